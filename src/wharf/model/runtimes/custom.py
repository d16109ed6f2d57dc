"""Custom Python models named as `package.module:ClassName`."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from wharf.errors import ConfigurationError
from wharf.model.base import Model

_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_class_path(uri: str) -> bool:
    return bool(_CLASS_PATH.match(uri))


def names_class(uri: str) -> bool:
    """Whether a model URI names a class (`module:Class`) rather than a file that happens to look like one."""
    return is_class_path(uri) and not Path(uri).exists()


def create(class_path: str, name: str, version: str | None = None) -> Model:
    """Instantiate the `Model` subclass at `module:Class` with the model's name."""
    module_name, _, class_name = class_path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(f"cannot import model class {class_path!r}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ConfigurationError(f"{class_path!r} is not a subclass of wharf.Model")
    return cls(name=name, version=version) if version else cls(name=name)
