"""Custom Python models named as `package.module:ClassName`: a `wharf.Model` subclass, or a `kserve.Model` one.

The module is imported as `python -m` and uvicorn import an application: from `sys.path` with the code root in
front of it, by default the current directory (the `wharf` command's own directory is not it). `PYTHONPATH` adds
more places, as for any Python program.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from wharf.errors import ConfigurationError
from wharf.model.base import Model
from wharf.model.runtimes import kserve_model

_CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def names_class(uri: str) -> bool:
    """Whether a model URI names a class (`package.module:ClassName`, so no `/` and no `://`) rather than a file.

    The one reading of a URI on both sides: the control plane's spec and policy apply their custom-class rules to
    exactly what the model server imports, so `s3:Model` is module `s3`'s class, never a storage URI, and a
    file that happens to be named like a class is served as `./name:Class`. It reads no file system.
    """
    return _CLASS_PATH.fullmatch(uri) is not None


def create(class_path: str, name: str, version: str | None = None, code_root: Path | None = None) -> Model:
    """Instantiate the model class at `module:Class` with the model's name, importing it from `code_root` (by
    default the current directory) or `sys.path`."""
    module_name, _, class_name = class_path.partition(":")
    _put_first_on_path(code_root or Path.cwd())
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(f"cannot import model class {class_path!r}: {e}") from e
    if isinstance(cls, type) and issubclass(cls, Model):
        return cls(name=name, version=version) if version else cls(name=name)
    if kserve_model.is_kserve_model(cls):
        return kserve_model.create(cls, name, version)
    raise ConfigurationError(f"{class_path!r} is not a subclass of wharf.Model (or of kserve.Model)")


def _put_first_on_path(root: Path) -> None:
    """Put `root` at the front of `sys.path` unless it is on it already."""
    resolved = root.resolve()
    if not any(Path(entry or ".").resolve() == resolved for entry in sys.path):
        sys.path.insert(0, str(resolved))
