"""Registry of framework runtimes, keyed by model format name and recognised by artifact.

Each runtime is one module exposing `create(name, artifact, version) -> Model`; modules are imported only when
a model of their format is served, so that no framework is imported needlessly. An artifact is a file matching
one of the runtime's `files` patterns, or a directory holding one of its `markers` (e.g. `saved_model.pb`).
The patterns take KServe's names too: XGBoost's `model.bst`, `model.json`, `model.ubj`, LightGBM's `model.bst`.
A file whose name fits several runtimes (`model.bst`) is told apart by its content (see `signatures`); numbered
version directories holding one model each (TensorFlow Serving's `model/1/saved_model.pb`) give the newest.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from wharf.errors import ConfigurationError
from wharf.model.base import Model
from wharf.model.runtimes.signatures import content_of


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    module: str
    files: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()

    def create(self, name: str, artifact: Path, version: str | None = None) -> Model:
        return importlib.import_module(self.module).create(name, artifact, version)

    def matches(self, path: Path) -> bool:
        if path.is_dir():
            return any((path / marker).exists() for marker in self.markers)
        return any(fnmatch(path.name.lower(), pattern) for pattern in self.files)


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("sklearn", "wharf.model.runtimes.sklearn", files=("*.joblib", "*.pkl", "*.pickle")),
        Runtime(
            "xgboost", "wharf.model.runtimes.xgboost", files=("*.ubj", "*.bst", "*.xgb", "xgboost*.json", "model.json")
        ),
        Runtime("lightgbm", "wharf.model.runtimes.lightgbm", files=("*.lgb", "*.lgbm", "lightgbm*.txt", "*.bst")),
        Runtime("onnx", "wharf.model.runtimes.onnx", files=("*.onnx",)),
        Runtime("pytorch", "wharf.model.runtimes.pytorch", files=("*.pt", "*.pt2", "*.torchscript")),
        Runtime("tensorflow", "wharf.model.runtimes.tensorflow", files=("*.keras",), markers=("saved_model.pb",)),
        Runtime("huggingface", "wharf.model.runtimes.huggingface", files=("*.gguf",), markers=("config.json",)),
    )
}


def by_format(name: str) -> Runtime:
    """The runtime serving model format `name` (e.g. `sklearn`)."""
    try:
        return RUNTIMES[name.lower()]
    except KeyError:
        raise ConfigurationError(f"unknown model format {name!r}; known: {', '.join(RUNTIMES)}") from None


def find_artifact(path: Path, runtime: Runtime | None = None) -> tuple[Runtime, Path]:
    """The runtime and artifact for `path`: the path itself, or the one recognisable entry in a directory."""
    if runtime is not None and path.is_file():
        return runtime, path  # the format is named: any file name will do
    runtimes = [runtime] if runtime else list(RUNTIMES.values())
    inside = sorted(p for p in path.iterdir() if not p.name.startswith(".")) if path.is_dir() else []
    for candidates in ([path], inside):
        found = [(r, p) for p in candidates for r in _recognising(p, runtimes)]
        if len(found) > 1 and all(p.is_dir() and p.name.isdigit() for _, p in found):
            found = [max(found, key=lambda f: int(f[1].name))]  # version directories: the newest
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(sorted(f"{p.name} ({r.name})" for r, p in found))
            raise ConfigurationError(
                f"{path}: more than one model artifact found: {names}; name one, or pass --runtime"
            )
    if len(inside) == 1 and inside[0].is_dir():  # e.g. an archive that unpacks into one folder
        return find_artifact(inside[0], runtime)
    if path.is_dir() and not inside:
        raise ConfigurationError(f"{path}: the model directory is empty")
    raise ConfigurationError(f"{path}: no model artifact found (looked for {_patterns(runtimes)})")


def _recognising(path: Path, runtimes: list[Runtime]) -> list[Runtime]:
    """The runtimes among `runtimes` that take `path`: by name, and by content where the name fits several."""
    matching = [r for r in runtimes if r.matches(path)]
    if len(matching) < 2 or not path.is_file():
        return matching
    content = content_of(path)
    chosen = [r for r in matching if r.name == content.runtime]
    if not chosen:
        names = " and ".join(r.name for r in matching)
        raise ConfigurationError(
            f"{path}: its name fits {names} models, but its content is none of theirs "
            "(XGBoost JSON or UBJSON, a LightGBM text model)"
        )
    return chosen


def is_model_dir(path: Path) -> bool:
    """Whether `path` is itself a model (as opposed to a repository of model directories)."""
    entries = [path, *(p for p in path.iterdir() if p.is_file())]
    return any(r.matches(p) for r in RUNTIMES.values() for p in entries)


def _patterns(runtimes: list[Runtime]) -> str:
    return ", ".join(
        [*(f for r in runtimes for f in r.files), *(f"a directory with {m}" for r in runtimes for m in r.markers)]
    )
