"""Registry of framework runtimes, keyed by model format name and recognised by artifact file name.

Each runtime is one module exposing `create(name, artifact, version) -> Model`; modules are imported only when
a model of their format is served, so that no framework is imported needlessly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from wharf.errors import ConfigurationError
from wharf.model.base import Model


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    module: str
    suffixes: tuple[str, ...]

    def create(self, name: str, artifact: Path, version: str | None = None) -> Model:
        return importlib.import_module(self.module).create(name, artifact, version)


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("sklearn", "wharf.model.runtimes.sklearn", (".joblib", ".pkl", ".pickle")),
    )
}


def by_format(name: str) -> Runtime:
    """The runtime serving model format `name` (e.g. `sklearn`)."""
    try:
        return RUNTIMES[name.lower()]
    except KeyError:
        raise ConfigurationError(f"unknown model format {name!r}; known: {', '.join(RUNTIMES)}") from None


def find_artifact(path: Path, runtime: Runtime | None = None) -> tuple[Runtime, Path]:
    """The runtime and artifact for a file, or for the one recognisable file in a directory."""
    candidates = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    runtimes = [runtime] if runtime else list(RUNTIMES.values())
    found = [(r, p) for p in candidates for r in runtimes if p.name.lower().endswith(r.suffixes)]
    if len(found) != 1:
        what = "no" if not found else "more than one"
        raise ConfigurationError(f"{path}: {what} model artifact found (looked for {_suffixes(runtimes)})")
    return found[0]


def is_model_dir(path: Path) -> bool:
    """Whether `path` directly holds a recognisable artifact (as opposed to a repository of models)."""
    return any(
        p.is_file() and p.name.lower().endswith(r.suffixes) for p in path.iterdir() for r in RUNTIMES.values()
    )


def _suffixes(runtimes: list[Runtime]) -> str:
    return ", ".join(s for r in runtimes for s in r.suffixes)
