"""The model repository: which models a server knows, loading and unloading them at run time, readiness.

A repository is filled with model instances (`add`), or discovered from a directory whose sub-directories are
models (`discover`): `root/NAME/` holding an artifact, or `root/NAME/VERSION/` with numeric versions. A root whose
sub-directories are all numeric versions (`tfk/1/saved_model.pb`) is itself one model, named after it. An empty
model (or version) directory is registered but not loaded: it is not ready, and the index says why; the load API
loads it once it holds a model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from wharf.errors import ModelLoadError, ModelNotFound, ModelNotReady, WharfError
from wharf.model import runtimes
from wharf.model import settings as model_settings
from wharf.model.base import Model, is_async
from wharf.model.runtimes import custom

log = logging.getLogger(__name__)

ModelFactory = Callable[[], Model]


class ModelState(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(slots=True)
class _Entry:
    name: str
    version: str | None
    factory: ModelFactory
    model: Model | None = None
    state: ModelState = ModelState.UNAVAILABLE
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: loaded only when asked (by the load API): its directory was empty when it was discovered
    deferred: bool = False


async def _call(model: Model, method: str) -> Any:
    if is_async(model, method):
        return await getattr(model, method)()
    return await asyncio.to_thread(getattr(model, method))


def _version_key(version: str | None) -> tuple[int, int | str]:
    if version is None:
        return (0, 0)
    return (1, int(version)) if version.isdigit() else (2, version)


class ModelRepository:
    def __init__(self, root: Path | None = None, on_loaded: Callable[[Model, float], Any] | None = None) -> None:
        self.root = root
        self._entries: dict[str, dict[str | None, _Entry]] = {}
        self.on_loaded = on_loaded

    # -- filling the repository -------------------------------------------------------------------------------
    def add(self, model: Model) -> None:
        """Register a model instance (loaded by `load_all` or `load`)."""
        self._add(model.name, model.version, lambda: model)

    def add_factory(self, name: str, version: str | None, factory: ModelFactory) -> None:
        self._add(name, version, factory)

    def _add(self, name: str, version: str | None, factory: ModelFactory) -> _Entry:
        versions = self._entries.setdefault(name, {})
        if version in versions:
            raise WharfError(f"model '{name}' version {version!r} is registered twice")
        entry = versions[version] = _Entry(name, version, factory)
        return entry

    def discover(self) -> None:
        """Register every model found under `root` that is not registered yet."""
        if self.root is None:
            return
        visible = _visible(self.root)
        if visible and all(p.is_dir() and p.name.isdigit() for p in visible):  # the root is one versioned model
            if self.root.name not in self._entries:
                self._discover_model(self.root)
            return
        for name in sorted(p.name for p in self.root.iterdir()):
            path = self._model_dir(name)
            if path is not None and name not in self._entries:
                self._discover_model(path)

    def _model_dir(self, name: str) -> Path | None:
        """`root/name` when `name` is a model directory's plain name inside `root`, else None.

        `name` may come from a client (the repository load API): an absolute path, `..`, a hidden name or one
        with a separator would reach outside the repository, and loading unpickles what it finds there.
        """
        if self.root is None or not name or name.startswith(".") or any(c in name for c in ("/", "\\", "\0")):
            return None
        path = self.root / name
        return path if path.parent == self.root and path.is_dir() else None

    def _discover_model(self, path: Path) -> None:
        for version, directory in _versions_of(path) or [(None, path)]:
            entry = self._add(path.name, version, _artifact_factory(path.name, directory, version))
            if not _visible(directory):
                entry.deferred = True
                entry.reason = f"its directory {directory} is empty: nothing to load yet"

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load every registered model (but those deferred); the first failure is raised."""
        await asyncio.gather(*(self._load(e) for vs in self._entries.values() for e in vs.values() if not e.deferred))

    async def load(self, name: str) -> None:
        """(Re)load every version of `name`, discovering it under `root` if it is new there."""
        if name not in self._entries and (path := self._model_dir(name)) is not None:
            self._discover_model(path)
        await asyncio.gather(*(self._load(e) for e in self._versions(name).values()))

    async def unload(self, name: str) -> None:
        await asyncio.gather(*(self._unload(e) for e in self._versions(name).values()))

    async def unload_all(self) -> None:
        await asyncio.gather(*(self._unload(e) for vs in self._entries.values() for e in vs.values()))

    async def _load(self, entry: _Entry) -> None:
        async with entry.lock:
            if entry.state is ModelState.READY:
                return
            entry.state, entry.reason = ModelState.LOADING, ""
            started = time.perf_counter()
            try:
                model = await asyncio.to_thread(entry.factory)  # may fetch the artifact over the network
                await _call(model, "load")
            except Exception as e:
                entry.state = ModelState.UNAVAILABLE
                entry.reason = e.message if isinstance(e, WharfError) else f"{type(e).__name__}: {e}"
                log.error("model load failed", extra={"model": entry.name, "reason": entry.reason})
                raise e if isinstance(e, ModelLoadError) else ModelLoadError(entry.reason) from e
            model.ready = True
            entry.model, entry.state = model, ModelState.READY
            seconds = time.perf_counter() - started
            log.info("model loaded", extra={"model": entry.name, "version": entry.version, "seconds": seconds})
            if self.on_loaded:
                self.on_loaded(model, seconds)

    async def _unload(self, entry: _Entry) -> None:
        async with entry.lock:
            if entry.model is None:
                return
            model, entry.model = entry.model, None
            entry.state, model.ready = ModelState.UNLOADING, False
            try:
                await _call(model, "unload")
            finally:
                entry.state, entry.reason = ModelState.UNAVAILABLE, "unloaded"

    # -- lookups ----------------------------------------------------------------------------------------------
    def _versions(self, name: str) -> dict[str | None, _Entry]:
        try:
            return self._entries[name]
        except KeyError:
            raise ModelNotFound(f"model '{name}' is not in the repository") from None

    def _entry(self, name: str, version: str | None) -> _Entry:
        versions = self._versions(name)
        if version is None:
            return max(versions.values(), key=lambda e: (e.model is not None, _version_key(e.version)))
        try:
            return versions[version]
        except KeyError:
            raise ModelNotFound(f"model '{name}' has no version {version!r}") from None

    def get(self, name: str, version: str | None = None) -> Model:
        """The ready model serving `name` (its newest ready version unless `version` is given)."""
        entry = self._entry(name, version)
        model = entry.model
        if model is None or not model.ready:
            raise ModelNotReady(f"model '{name}' is not ready ({entry.state.value.lower()})")
        return model

    def is_ready(self, name: str, version: str | None = None) -> bool:
        entry = self._entry(name, version)
        return entry.model is not None and entry.model.ready

    def index(self) -> list[dict[str, str]]:
        rows = []
        for versions in self._entries.values():
            for e in sorted(versions.values(), key=lambda e: _version_key(e.version)):
                row = {"name": e.name, "state": e.state.value, "reason": e.reason}
                if e.version is not None:
                    row["version"] = e.version
                rows.append(row)
        return rows

    def names(self) -> list[str]:
        return list(self._entries)

    def versions(self, name: str) -> list[str]:
        return [v for v in sorted(self._versions(name), key=_version_key) if v is not None]


def _visible(path: Path) -> list[Path]:
    """The entries of directory `path` but hidden ones."""
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def _versions_of(path: Path) -> list[tuple[str, Path]]:
    """The numeric version directories in `path`, as (version, directory)."""
    return [(p.name, p) for p in path.iterdir() if p.is_dir() and p.name.isdigit()]


def _artifact_factory(name: str, path: Path, version: str | None) -> ModelFactory:
    return lambda: _create(name, path, None, version)


def _create(name: str, path: Path, runtime: str | None, version: str | None) -> Model:
    """The model whose artifact is (or is in) `path`, with its `model-settings.json` applied."""
    settings = model_settings.read(path)
    chosen = runtime or settings.runtime
    found, artifact = runtimes.find_artifact(path, runtimes.by_format(chosen) if chosen else None)
    return settings.apply(found.create(name, artifact, version))


def source_factory(uri: str, name: str, runtime: str | None, resolve: Callable[[str], Path]) -> ModelFactory:
    """A factory for the model at `uri`: a `module:Class` path, or an artifact fetched by `resolve`."""
    if custom.names_class(uri):
        return lambda: custom.create(uri, name)
    return lambda: _create(name, resolve(uri), runtime, None)
