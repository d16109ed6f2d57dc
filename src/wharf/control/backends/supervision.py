"""What every backend does alike around its replicas: `Supervisor`, the base of `LocalBackend` and `RayBackend`.

It keeps the replicas (by id, oldest first) and their revisions' restart backoffs (`backoff.py`), scales a
revision by launching new replicas and retiring surplus ones (not ready first, pending ones first among them, then
the newest), checks readiness over HTTP (`GET /v2/health/ready` within `health_timeout_s`, on a connection of its
own: none is pooled to a replica that may be dead), turns checks into ready/unready transitions (`unready_after`
failed ones), stops retired replicas in the background, and adopts the replicas a previous daemon recorded. A
backend says how one of its replicas is supervised (`_supervise`), found alive after a restart (`_live`), taken
back (`_resume`), discarded (`_discard`) and stopped (`_halt`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp

from wharf.control.backends.backoff import RestartBackoff
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.settings import LocalBackendSettings

log = logging.getLogger(__name__)
#: A replica's environment variable that sets how long it drains when stopped.
DRAIN_ENV = "WHARF_DRAIN_TIMEOUT_S"


@dataclass(eq=False)
class SupervisedReplica:
    """What every backend tracks of a replica; each backend's replica adds where it runs."""

    id: str
    spec: ReplicaSpec
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    http_port: int = 0
    grpc_port: int = 0
    ready: bool = False
    started_at: float = 0.0  # wall-clock seconds when its current process started
    ready_at: float | None = None  # monotonic time its current process first passed a readiness check
    backoff_s: float = 0.0  # the restart delay it is waiting out
    failed_checks: int = 0
    pending: str | None = None  # why it has not started yet
    progress: str | None = None  # what its process, starting, last said of its progress
    task: asyncio.Task[None] | None = None

    def state(self) -> ReplicaState:
        """Its plain-data snapshot."""
        raise NotImplementedError


R = TypeVar("R", bound=SupervisedReplica)


class Supervisor(Generic[R]):
    """The `Backend` protocol's bookkeeping over replicas of type `R` (see the module docstring)."""

    def __init__(
        self, home: Path, settings: LocalBackendSettings, on_change: Callable[[], object] | None, replica: type[R]
    ) -> None:
        self.home = home
        self.settings = settings
        self.on_change = on_change
        self._replica_type = replica
        self._replicas: dict[str, R] = {}
        self._backoffs: dict[str, RestartBackoff] = {}  # by revision, kept while it is scaled to zero
        self._stopping: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    # -- what a backend says about its replicas -----------------------------------------------------------------
    async def _supervise(self, r: R) -> None:
        """Keep `r` running until cancelled."""
        raise NotImplementedError

    async def _live(self, record: ReplicaState) -> Any:
        """What still runs the recorded replica (its process, its actor), or None."""
        raise NotImplementedError

    async def _resume(self, r: R, live: Any, record: ReplicaState) -> None:
        """Take back `live`, healthy and running `r.spec`, as `r`."""
        raise NotImplementedError

    async def _discard(self, live: Any) -> None:
        """Stop `live`, a replica not adopted."""
        raise NotImplementedError

    async def _halt(self, r: R) -> None:
        """Stop a retired replica's process (drained first) and free what it held; its task is cancelled already."""
        raise NotImplementedError

    async def _prepare(self) -> None:
        """Whatever must be ready before a replica is launched (the Ray backend joins its cluster)."""

    # -- the Backend protocol -----------------------------------------------------------------------------------
    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        """The replicas of `revision` (or of all revisions), oldest first; stopping ones are not listed."""
        return [r.state() for r in self._replicas.values() if revision in (None, r.spec.revision)]

    def failing(self, revision: str) -> str | None:
        """Why `revision`'s replicas keep failing to start, when it has replicas, none of them ready, and the last
        `settings.failing_after` of them to end were never ready (the last error of the one that ended last);
        else None."""
        replicas = [r for r in self._replicas.values() if r.spec.revision == revision]
        backoff = self._backoffs.get(revision)
        if not replicas or backoff is None or backoff.failed_starts < self.settings.failing_after:
            return None
        if any(r.ready for r in replicas):
            return None
        return max(replicas, key=lambda r: r.started_at).last_error

    def log_path(self, revision: str, replica_id: str) -> Path:
        return self.home / "logs" / revision / f"{replica_id}.log"

    async def scale(self, spec: ReplicaSpec, replicas: int) -> None:
        """Start or stop replicas of `spec.revision` until it has `replicas` of them.

        Returns at once: new replicas report their readiness through `on_change`, and stopped ones (those not
        ready first, pending ones first among them, then the newest) leave `replicas()` immediately and drain in
        the background.
        """
        if replicas < 0:
            raise ValueError(f"replicas must be 0 or more, not {replicas}")
        await self._prepare()
        current = [r for r in self._replicas.values() if r.spec.revision == spec.revision]
        for _ in range(replicas - len(current)):
            self._launch(self._replica_type(self._new_id(spec.revision), spec))
        retired_first = sorted(current, key=lambda r: (r.ready, r.pending is None, -r.started_at))
        self._retire(retired_first[: max(len(current) - replicas, 0)])

    async def remove(self, revision: str) -> None:
        """Stop every replica of `revision` (in the background, as `scale` does), and forget its backoff."""
        self._retire([r for r in self._replicas.values() if r.spec.revision == revision])
        self._backoffs.pop(revision, None)

    async def adopt(self, records: Sequence[ReplicaState], specs: Mapping[str, ReplicaSpec]) -> None:
        """Take back the replicas a previous daemon recorded.

        A replica still running (`_live`), started with the spec its revision has in `specs` (the recorded
        `spec_digest` says) and answering its readiness check on its recorded address is watched again as it is;
        the others are started anew with that spec (a live one is stopped first), counting a restart. A record
        whose revision is not in `specs` is stopped if alive, and forgotten.
        """
        await self._prepare()
        fresh = [record for record in records if record.id not in self._replicas]
        await asyncio.gather(*(self._take_over(record, specs.get(record.revision)) for record in fresh))

    async def close(self, stop_replicas: bool) -> None:
        """Stop supervising, after replicas already stopping have finished; `on_change` is no longer called.

        With `stop_replicas`, every replica is stopped (drained) and forgotten. Without, they keep running for
        the next daemon to `adopt`, and `replicas()` still lists them for the store to record.
        """
        self._closed = True
        if stop_replicas:
            self._retire(list(self._replicas.values()))
        else:
            await cancel([r.task for r in self._replicas.values() if r.task])
        if self._stopping:
            await asyncio.wait(set(self._stopping))
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- one replica's life -------------------------------------------------------------------------------------
    def _launch(self, r: R) -> None:
        if self._closed:
            raise RuntimeError("the backend is closed")
        self._replicas[r.id] = r
        r.task = asyncio.create_task(self._supervise(r), name=f"replica {r.id}")

    async def _back_off(self, r: R, delay: float) -> None:
        """Wait `delay` seconds before starting the replica, shown in its state meanwhile."""
        if delay <= 0:
            return
        if r.backoff_s != delay:
            r.backoff_s = delay
            self._changed()
        await asyncio.sleep(delay)
        r.backoff_s = 0.0

    def _checked(self, r: R, ok: bool) -> None:
        """Count one readiness check of `r`: the first that passes makes it ready, `unready_after` failing ones
        in a row make it unready."""
        r.failed_checks = 0 if ok else r.failed_checks + 1
        if ok and not r.ready:
            r.ready = True
            if r.ready_at is None:
                r.ready_at = time.monotonic()
            self._backoff(r.spec.revision).ready()
            self._changed()
        elif r.ready and r.failed_checks >= self.settings.unready_after:
            log.warning("replica unready", extra={"replica": r.id, "failed_checks": r.failed_checks})
            r.ready = False
            self._changed()

    async def _take_over(self, record: ReplicaState, spec: ReplicaSpec | None) -> None:
        live = await self._live(record)
        same_spec = spec is not None and record.spec_digest == spec.digest
        healthy = live is not None and same_spec and await self._ready(record.host, record.http_port)
        if live is not None and not healthy:
            why = "its revision is gone" if spec is None else "not ready" if same_spec else "started with another spec"
            log.info("replica not adopted; stopping it", extra={"replica": record.id, "reason": why})
            await self._discard(live)
        if spec is None:
            return
        r = self._replica_type(record.id, spec, record.restarts, record.last_exit, record.last_error)
        if healthy:
            r.http_port, r.grpc_port, r.started_at = record.http_port, record.grpc_port, record.started_at
            r.ready, r.ready_at = True, time.monotonic()
            await self._resume(r, live, record)
            self._backoff(spec.revision).ready()
            log.info("replica adopted", extra={"replica": r.id, "pid": record.pid, "host": record.host})
        else:
            r.restarts += 1
        self._launch(r)
        self._changed()

    # -- stopping -----------------------------------------------------------------------------------------------
    def _retire(self, replicas: list[R]) -> None:
        """Take `replicas` out of the list and stop them in the background."""
        for r in replicas:
            del self._replicas[r.id]
            task = asyncio.create_task(self._stop(r), name=f"stop replica {r.id}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        if replicas:
            self._changed()

    async def _stop(self, r: R) -> None:
        await cancel([r.task] if r.task else [])
        await self._halt(r)

    def _drain_s(self, spec: ReplicaSpec) -> float:
        """How long a replica of `spec` may drain when stopped: its WHARF_DRAIN_TIMEOUT_S, else the settings'."""
        try:
            return float(spec.env[DRAIN_ENV])
        except (KeyError, ValueError):
            return self.settings.drain_timeout_s

    # -- small parts --------------------------------------------------------------------------------------------
    async def _ready(self, host: str, port: int) -> bool:
        """Whether the model server at `host:port` answers its readiness check in time."""
        if not host or port == 0:
            return False
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.health_timeout_s),
                connector=aiohttp.TCPConnector(force_close=True),  # no pooled connection to a dead replica
            )
        bracketed = f"[{host}]" if ":" in host else host
        try:
            async with self._http.get(f"http://{bracketed}:{port}/v2/health/ready") as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _pending(self, r: R, reason: str | None) -> None:
        if r.pending != reason:
            r.pending = reason
            self._changed()

    def _progress(self, r: R, progress: str | None) -> None:
        if r.progress != progress:
            r.progress = progress
            self._changed()

    def _changed(self) -> None:
        if self.on_change is None or self._closed:
            return
        try:
            self.on_change()
        except Exception:
            log.exception("on_change failed")

    def _backoff(self, revision: str) -> RestartBackoff:
        backoff = self._backoffs.get(revision)
        if backoff is None:
            s = self.settings
            backoff = self._backoffs[revision] = RestartBackoff(s.backoff_initial_s, s.backoff_max_s, s.backoff_reset_s)
        return backoff

    def _new_id(self, revision: str) -> str:
        while (replica_id := f"{revision}-{secrets.token_hex(3)}") in self._replicas:
            pass
        return replica_id


async def cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until they have ended."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
