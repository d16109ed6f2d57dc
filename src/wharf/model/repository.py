"""The model repository: which models a server knows, loading and unloading them at run time, readiness.

A repository is filled with model instances (`add`), or discovered from a directory whose sub-directories are
models (`discover`): `root/NAME/` holding an artifact, or `root/NAME/VERSION/` with numeric versions. A root whose
sub-directories are all numeric versions (`tfk/1/saved_model.pb`) is itself one model, named after it. An empty
model (or version) directory is registered but not loaded: it is not ready, and the index says why; the load API
loads it once it holds a model.

A replica serving many models also keeps a catalogue (`register`): models named by a storage URI, loaded on their
first request (`acquire`; concurrent first requests share one load) and evicted, least recently used first, when
a load would exceed the memory budget (`budget`, bytes; None: no limit; the rules are `wharf.model.eviction`'s).
A model evicted, of the catalogue or not, is loaded again on its next request. Loads run one at a time (fetching
an artifact is outside that), in a worker thread, so that each model's resident cost can be measured: the
process's resident memory before and after (`wharf.model.memory`), unless that figure is clearly wrong (a framework
imported by the same load; less than the objects the model holds: memory freed earlier and reused; or below the
allocator's granularity, `RSS_NOISE_BYTES`), when the size of the model's objects stands for it; the declared
figure only where neither measure sees anything. A model that fails to load is answered with the reason and tried
again on a request only after a backoff (`wharf.model.catalogue.Backoff`). Unloading waits (up to `drain_timeout_s`) for the model's requests in flight,
as `in_flight` (set by the server) counts them; a model serving requests is never evicted.

Serving a loaded model (`serving`) costs a dict lookup and the touch that eviction orders by (a clock read, an
attribute store and a counter increment: about 60 ns).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from wharf import storage
from wharf.storage.settings import StorageSettings
from wharf.errors import InvalidInput, ModelLoadError, ModelNotFound, ModelNotReady, WharfError
from wharf.model import runtimes
from wharf.model import settings as model_settings
from wharf.model.base import Model, is_async, overrides
from wharf.model.catalogue import Backoff, Registration
from wharf.model.eviction import Resident, make_room
from wharf.model.memory import RSS_NOISE_BYTES, object_bytes, process_rss
from wharf.model.runtimes import custom

log = logging.getLogger(__name__)

ModelFactory = Callable[[], Model]


class ModelState(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"
    REGISTERED = "REGISTERED"  # not in memory; loaded on its next request
    FAILED = "FAILED"  # its load on demand failed; tried again on a request after a backoff


class NotLoaded(ModelNotReady):
    """The model is not in memory but is loaded on demand: `ModelRepository.acquire` loads it."""


@dataclass(slots=True)
class _Entry:
    name: str
    version: str | None
    factory: ModelFactory | None  # None for a catalogue model: made from its registration when it loads
    model: Model | None = None
    state: ModelState = ModelState.UNAVAILABLE
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: loaded only when asked (by the load API): its directory was empty when it was discovered
    deferred: bool = False
    registration: Registration | None = None
    #: loaded on a request while not in memory: a catalogue model, or any model once evicted
    on_demand: bool = False
    resident_bytes: int = 0
    measured_by: str = ""  # "rss", "objects" or "declared": which figure resident_bytes is
    last_used: float = 0.0  # time.monotonic() of its last request or load
    requests: int = 0
    loads: int = 0
    evictions: int = 0
    backoff: Backoff = Backoff()
    loading: asyncio.Task[None] | None = None  # the load that requests wait for
    removed: bool = False

    @property
    def declared_bytes(self) -> int | None:
        return self.registration.declared_bytes if self.registration else None


async def _call(model: Model, method: str) -> Any:
    if is_async(model, method):
        return await getattr(model, method)()
    if overrides(model, method):  # (`Model`'s own does nothing: no thread hop for it)
        return await asyncio.to_thread(getattr(model, method))
    return None


async def _made(factory: ModelFactory) -> Model:
    """`factory()`'s model, loaded: in one worker-thread hop where its `load` is plain."""

    def make() -> Model:
        model = factory()  # may fetch the artifact over the network
        if not is_async(model, "load"):
            model.load()
        return model

    model = await asyncio.to_thread(make)
    if is_async(model, "load"):
        await model.load()
    return model


def _version_key(version: str | None) -> tuple[int, int | str]:
    if version is None:
        return (0, 0)
    return (1, int(version)) if version.isdigit() else (2, version)


class ModelRepository:
    def __init__(
        self,
        root: Path | None = None,
        on_loaded: Callable[[Model, float], Any] | None = None,
        budget: int | None = None,
        resolve: Callable[[str], Path] | None = None,
    ) -> None:
        self.root = root
        self._entries: dict[str, dict[str | None, _Entry]] = {}
        self.on_loaded = on_loaded
        self.budget = budget
        #: a catalogue model's storage URI to a local path (default: `storage.resolve`, its settings read once)
        self.resolve = resolve or self._resolve
        self._storage_settings: StorageSettings | None = None
        #: requests in flight for a model name (the server counts them); unload waits for 0, eviction needs 0
        self.in_flight: Callable[[str], int] = lambda name: 0
        #: called with a model once it is unloaded or evicted (the server drops its worker threads)
        self.on_unloaded: Callable[[Model], Any] | None = None
        self.drain_timeout_s = 30.0
        self._measuring = asyncio.Lock()  # one load at a time: the process's memory before and after is its own
        self.loads = self.evictions = self.load_failures = self.misses = 0
        self._retired_requests = 0  # of models removed from the catalogue

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

    def register(self, name: str, registration: Registration) -> _Entry:
        """Add `name` to the catalogue as `registration` says (not loaded yet: see `load_registered`)."""
        self._check_declared(name, registration)
        entry = self._add(name, None, None)
        entry.registration, entry.on_demand = registration, True
        entry.state, entry.reason = ModelState.REGISTERED, "loaded on its first request"
        return entry

    def _check_declared(self, name: str, registration: Registration) -> None:
        budget, declared = self.budget, registration.declared_bytes
        if budget is not None and declared is not None and declared > budget:
            raise InvalidInput(
                f"model '{name}': parameters.memory ({declared} bytes) is more than this replica's whole memory "
                f"budget of {budget} bytes"
            )

    async def load_registered(self, name: str, registration: Registration) -> None:
        """Register `name` in the catalogue (replacing it, once its requests are done, if it names another
        artifact), and load it now unless `registration.lazy`."""
        current = self._entries.get(name, {}).get(None)
        if current is not None and current.registration is not None and len(self._entries[name]) == 1:
            if current.registration.storage_uri == registration.storage_uri:
                self._check_declared(name, registration)
                current.registration = registration
                if current.state is ModelState.FAILED:  # asked again: the next request tries at once
                    current.backoff = Backoff()
                    current.state, current.reason = ModelState.REGISTERED, f"registered again after: {current.reason}"
                if not registration.lazy:
                    await self._load(current)
                return
        if name in self._entries:
            await self.unload(name, remove=True)
        entry = self.register(name, registration)
        if not registration.lazy:
            await self._load(entry)

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load every registered model (but those deferred or lazy); the first failure is raised."""
        await asyncio.gather(
            *(self._load(e) for vs in self._entries.values() for e in vs.values() if not (e.deferred or e.on_demand))
        )

    async def load(self, name: str) -> None:
        """(Re)load every version of `name`, discovering it under `root` if it is new there."""
        if name not in self._entries and (path := self._model_dir(name)) is not None:
            self._discover_model(path)
        await asyncio.gather(*(self._load(e) for e in self._versions(name).values()))

    async def unload(self, name: str, remove: bool = False) -> None:
        """Unload every version of `name` once its requests in flight are done (or `drain_timeout_s` passed); a
        catalogue model (or any, with `remove`) leaves the repository, another stays, unloaded, until loaded.
        New requests for it are refused (503) from the start."""
        versions = self._versions(name)
        remove = remove or any(e.registration is not None for e in versions.values())
        async with contextlib.AsyncExitStack() as held:
            for entry in versions.values():
                await held.enter_async_context(entry.lock)  # a load under way ends first
                entry.removed, entry.on_demand = remove, False
            detached = [(entry, self._detach(entry)) for entry in versions.values()]
            await self._drained(name)
            for entry, model in detached:
                await self._release(entry, model)
        if remove and self._entries.get(name) is versions:
            del self._entries[name]
            self._retired_requests += sum(e.requests for e in versions.values())

    async def _drained(self, name: str) -> None:
        deadline = time.monotonic() + self.drain_timeout_s
        while self.in_flight(name) > 0:
            if time.monotonic() >= deadline:
                log.warning("unloading a model with requests in flight", extra={"model": name})
                return
            await asyncio.sleep(0.005)

    async def unload_all(self) -> None:
        await asyncio.gather(*(self._unload(e) for vs in self._entries.values() for e in vs.values()))

    async def acquire(self, name: str, version: str | None = None) -> Model:
        """The model serving `name`, loaded first if it is not in memory (a cache miss): requests for a model
        being loaded wait for that one load. A model that failed to load is tried again only after its backoff."""
        entry = self._entry(name, version)
        entry.requests += 1
        self.misses += 1
        while True:
            model = entry.model
            if model is not None and model.ready and entry.state is ModelState.READY:
                entry.last_used = time.monotonic()
                return model
            self._check_loadable(entry)
            if entry.loading is None:
                entry.loading = asyncio.create_task(self._load_on_demand(entry))
            try:
                await asyncio.shield(entry.loading)
            except ModelLoadError:
                raise ModelNotReady(f"model '{name}' failed to load: {entry.reason}") from None

    def _check_loadable(self, entry: _Entry) -> None:
        if entry.removed or entry.state is ModelState.UNLOADING:
            raise ModelNotReady(f"model '{entry.name}' is being unloaded")
        if not entry.on_demand:
            raise ModelNotReady(f"model '{entry.name}' is not ready ({entry.state.value.lower()})")
        now = time.monotonic()
        if entry.state is ModelState.FAILED and not entry.backoff.due(now):
            raise ModelNotReady(
                f"model '{entry.name}' failed to load: {entry.reason}; "
                f"it is tried again in {entry.backoff.retry_at - now:.1f} s"
            )

    async def _load_on_demand(self, entry: _Entry) -> None:
        try:
            await self._load(entry, on_demand=True)
        finally:
            entry.loading = None

    async def _load(self, entry: _Entry, on_demand: bool = False) -> None:
        async with entry.lock:
            if entry.state is ModelState.READY:
                return
            if entry.removed or (on_demand and not entry.on_demand):  # unloaded while this load waited
                raise ModelLoadError(f"model '{entry.name}' was unloaded")
            entry.state, entry.reason = ModelState.LOADING, ""
            started = time.perf_counter()
            try:
                factory = entry.factory or await self._catalogue_factory(entry)
                async with self._measuring:
                    model = await self._measured_load(entry, factory)
            except Exception as e:
                entry.state = ModelState.FAILED if entry.on_demand else ModelState.UNAVAILABLE
                entry.reason = e.message if isinstance(e, WharfError) else f"{type(e).__name__}: {e}"
                entry.backoff = entry.backoff.failed(time.monotonic())
                self.load_failures += 1
                log.error("model load failed", extra={"model": entry.name, "reason": entry.reason})
                raise e if isinstance(e, ModelLoadError) else ModelLoadError(entry.reason) from e
            model.ready = True
            entry.model, entry.state, entry.backoff = model, ModelState.READY, Backoff()
            entry.loads += 1
            self.loads += 1
            entry.last_used = time.monotonic()
            seconds = time.perf_counter() - started
            log.info("model loaded", extra={"model": entry.name, "version": entry.version, "seconds": seconds})
            if self.on_loaded:
                self.on_loaded(model, seconds)

    async def _catalogue_factory(self, entry: _Entry) -> ModelFactory:
        """The factory of a catalogue model, its artifact fetched first (outside the one-load-at-a-time lock)."""
        assert entry.registration is not None
        uri, fmt = entry.registration.storage_uri, entry.registration.model_format
        if custom.names_class(uri):
            return lambda: custom.create(uri, entry.name)
        path = await asyncio.to_thread(self.resolve, uri)
        return lambda: _create(entry.name, path, fmt, None)

    def _resolve(self, uri: str) -> Path:
        if self._storage_settings is None:
            self._storage_settings = StorageSettings()  # (reading the environment takes milliseconds)
        return storage.resolve(uri, self._storage_settings)

    async def _measured_load(self, entry: _Entry, factory: ModelFactory) -> Model:
        """Make room for `entry`'s model, load it and measure it; evict more if the measure asks (or refuse it)."""
        await self._make_room(entry, entry.resident_bytes or entry.declared_bytes or 0)
        before, modules = process_rss(), len(sys.modules)
        model = await _made(factory)
        self._measure(entry, model, before, imported=len(sys.modules) > modules)
        try:
            await self._make_room(entry, entry.resident_bytes)
        except ModelLoadError:
            await _call(model, "unload")
            raise
        return model

    def _measure(self, entry: _Entry, model: Model, rss_before: int | None, imported: bool) -> None:
        objects = object_bytes(model)
        after = process_rss()
        grown = None if rss_before is None or after is None else after - rss_before
        if grown is not None and not imported and grown >= max(objects, RSS_NOISE_BYTES):
            entry.resident_bytes, entry.measured_by = grown, "rss"
        elif objects > 0 or not entry.declared_bytes:
            entry.resident_bytes, entry.measured_by = objects, "objects"
        else:
            entry.resident_bytes, entry.measured_by = entry.declared_bytes, "declared"

    async def _make_room(self, entry: _Entry, needed: int) -> None:
        """Evict what `make_room` says so that `needed` more bytes fit the budget (ModelLoadError if they cannot)."""
        if self.budget is None:
            return
        loaded = {(e.name, e.version): e for e in self._loaded() if e is not entry}
        residents = [Resident(k, e.resident_bytes, e.last_used, self.in_flight(e.name) > 0) for k, e in loaded.items()]
        room = make_room(residents, sum(r.bytes for r in residents), self.budget, needed)
        if room.refused:
            raise ModelLoadError(f"model '{entry.name}' cannot be loaded: {room.refused}")
        evicted = [self._evict(loaded[key], entry.name) for key in room.evict]  # all at once, before any await
        for model in evicted:
            await _call(model, "unload")

    def _evict(self, entry: _Entry, for_model: str) -> Model:
        model, entry.model = entry.model, None
        assert model is not None
        model.ready = False
        entry.state, entry.on_demand = ModelState.REGISTERED, True
        entry.reason = f"evicted (least recently used) to make room for model '{for_model}'"
        entry.evictions += 1
        self.evictions += 1
        log.info("model evicted", extra={"model": entry.name, "bytes": entry.resident_bytes, "for": for_model})
        if self.on_unloaded:
            self.on_unloaded(model)
        return model

    async def _unload(self, entry: _Entry) -> None:
        async with entry.lock:
            await self._release(entry, self._detach(entry))

    def _detach(self, entry: _Entry) -> Model | None:
        """Take `entry`'s model out of lookups (requests holding it go on with it)."""
        model, entry.model = entry.model, None
        if model is not None:
            entry.state = ModelState.UNLOADING
        return model

    async def _release(self, entry: _Entry, model: Model | None) -> None:
        try:
            if model is not None:
                model.ready = False
                if self.on_unloaded:
                    self.on_unloaded(model)
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
            if len(versions) == 1:  # (every request's case but for versioned models: no `max` to call)
                return next(iter(versions.values()))
            return max(versions.values(), key=lambda e: (e.model is not None, _version_key(e.version)))
        try:
            return versions[version]
        except KeyError:
            raise ModelNotFound(f"model '{name}' has no version {version!r}") from None

    def _loaded(self) -> list[_Entry]:
        return [e for vs in self._entries.values() for e in vs.values() if e.state is ModelState.READY and e.model]

    def serving(self, name: str, version: str | None = None) -> Model:
        """`get` for a request: the model is touched (eviction evicts the least recently touched). A model
        loaded on demand that is not in memory raises `NotLoaded` (then `acquire` it)."""
        entry = self._entry(name, version)
        model = entry.model
        if model is not None and model.ready:
            entry.last_used = time.monotonic()
            entry.requests += 1
            return model
        if entry.on_demand:
            raise NotLoaded(f"model '{name}' is not loaded")
        raise ModelNotReady(f"model '{name}' is not ready ({entry.state.value.lower()})")

    def on_demand(self, model: Model) -> bool:
        """Whether `model` is loaded on demand (a catalogue model, or one evicted before)."""
        entry = self._entries.get(model.name, {}).get(model.version)
        return entry is not None and entry.on_demand

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

    def ready(self) -> bool:
        """Every model is loaded, or is loaded on demand (the catalogue's, whatever their state)."""
        return all(e.on_demand or e.state is ModelState.READY for vs in self._entries.values() for e in vs.values())

    def index(self) -> list[dict[str, Any]]:
        """Triton's index rows (name, version, state, reason) with each model's memory and use."""
        rows = []
        wall_offset = time.time() - time.monotonic()
        for versions in self._entries.values():
            for e in sorted(versions.values(), key=lambda e: _version_key(e.version)):
                row: dict[str, Any] = {"name": e.name, "state": e.state.value, "reason": e.reason}
                if e.version is not None:
                    row["version"] = e.version
                if e.registration is not None:
                    row["storage_uri"] = storage.redact(e.registration.storage_uri)
                row |= {
                    "resident_bytes": e.resident_bytes if e.model is not None else 0,
                    "measured_bytes": e.resident_bytes,
                    "measured_by": e.measured_by,
                    "declared_bytes": e.declared_bytes,
                    "last_used": round(e.last_used + wall_offset, 3) if e.last_used else None,
                    "requests": e.requests,
                    "loads": e.loads,
                    "evictions": e.evictions,
                }
                rows.append(row)
        return rows

    def memory(self) -> dict[str, Any]:
        """The replica's summary: budget and bytes used, models registered and loaded, loads, evictions, hits."""
        entries = [e for vs in self._entries.values() for e in vs.values()]
        loaded = self._loaded()
        requests = self._retired_requests + sum(e.requests for e in entries)
        return {
            "budget_bytes": self.budget,
            "used_bytes": sum(e.resident_bytes for e in loaded),
            "process_rss_bytes": process_rss(),
            "models_registered": len(entries),
            "models_loaded": len(loaded),
            "loads": self.loads,
            "evictions": self.evictions,
            "load_failures": self.load_failures,
            "hits": requests - self.misses,
            "misses": self.misses,
            "hit_ratio": round((requests - self.misses) / requests, 6) if requests else None,
        }

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
