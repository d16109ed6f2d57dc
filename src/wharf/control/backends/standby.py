"""Standby replicas: for a revision scaled to zero, one model server forked from the template that has already
loaded the revision's model and waits, not listening, to be handed over (server/standby.py). Scaling the revision
back up hands it over instead of starting a process: it only has to listen, with no interpreter, import or model
load to wait for.

Keeping one costs its private memory (the model and whatever loading it wrote; the rest it shares with the
template), which `memory()` gives with its resident size. One is kept
only where memory allows (`MemAvailable` at least `standby_min_available` when it is started, and whenever the
revision is scaled to zero again, which the reconciler does on every pass; below it, it is dropped), for at most
`standby_max` revisions (the one scaled to zero longest ago goes first), and only for a revision whose replicas
ask for no resources: a replica with a memory or cpu limit runs in a cgroup of its own, which must be charged for
its memory from its start (cgroup v2 does not move charges with a process), and one with GPUs starts fresh. A
standby is dropped (stopped) when its revision is removed, when the spec it was started with is no longer the
revision's, and when it is handed over or fails to be (whether its start timed out, it exited, or the replica
being started was cancelled meanwhile); a standby that exited or is still loading is not used.

Each standby's pid is recorded in `home/standby/<revision>.pid` until it has stopped or become a replica, so that
a daemon killed before it could stop them does not leave them, and the template they keep alive, running for
good: the next `Standbys` on that home kills each recorded process that is still a replica process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from wharf.control.backends.logfile import LogFollower, serving_ports
from wharf.control.backends.memory import available_bytes, private_bytes, resident_bytes
from wharf.control.backends.process import ReplicaProcess, is_replica_process
from wharf.control.backends.replica import ReplicaSpec
from wharf.control.backends.template import ReplicaTemplate, TemplateError

log = logging.getLogger(__name__)

STANDBY_ENV = "WHARF_STANDBY"  # as server/standby.py reads it (the control plane does not import the server)
_STANDING_BY = b'"standing by"'
_POLL_S = 0.002  # while a handed-over standby starts listening (a few milliseconds)
_STOP_GRACE_S = 5.0


@dataclass(eq=False)
class _Standby:
    spec: ReplicaSpec
    process: ReplicaProcess
    log_path: Path
    handover: Path
    follower: LogFollower
    standing_by: bool = False

    @property
    def record(self) -> Path:
        """The file that holds its pid while it runs as a standby."""
        return self.handover.with_suffix(".pid")

    def ready(self) -> bool:
        """Whether it has loaded its models and waits for the handover (its log says so)."""
        if not self.standing_by:
            self.standing_by = any(_STANDING_BY in line for line in self.follower.new_lines())
        return self.standing_by and not self.process.exited()


@dataclass
class Standbys:
    """The standby replicas of a local backend's revisions, forked from its `template`; files under `home`."""

    template: ReplicaTemplate
    home: Path
    max_count: int
    min_available: int
    start_timeout_s: float
    _standbys: dict[str, _Standby] = field(default_factory=dict)  # by revision, oldest first
    _stopping: set[asyncio.Task[None]] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        """Kill the standbys an earlier daemon on this home left running (it was killed before it could stop
        them): each recorded pid that is still a replica process (not one that reused the pid)."""
        for record in (self.home / "standby").glob("*.pid"):
            with suppress(OSError, ValueError):
                if is_replica_process(pid := int(record.read_bytes())):
                    os.killpg(pid, signal.SIGKILL)
                    log.info("standby of an earlier daemon killed", extra={"pid": pid})
            record.unlink(missing_ok=True)
            record.with_suffix(".json").unlink(missing_ok=True)

    @staticmethod
    def eligible(spec: ReplicaSpec) -> bool:
        """Whether `spec`'s replicas may be handed over from a standby (they ask for no resources)."""
        return not spec.resources and bool(spec.model_uri)

    async def keep(self, spec: ReplicaSpec, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """Start a standby for `spec.revision` (now at zero replicas), running `wharf ARGV` with `env`, unless it
        has one for this spec already, is not eligible, or memory does not allow."""
        async with self._lock:
            await self._keep(spec, argv, env)

    async def _keep(self, spec: ReplicaSpec, argv: Sequence[str], env: Mapping[str, str]) -> None:
        current = self._standbys.get(spec.revision)
        if current is not None and current.spec.digest == spec.digest:
            if available_bytes() < self.min_available:  # memory ran short since: give it back
                self.drop(spec.revision)
            return  # (one that exited stays until it is taken, so that a failing one is not started again and again)
        self.drop(spec.revision)
        if not self.eligible(spec) or not self.template.can_fork(env) or available_bytes() < self.min_available:
            return
        while len(self._standbys) >= self.max_count:
            self.drop(next(iter(self._standbys)))
        directory = self.home / "standby"
        directory.mkdir(parents=True, exist_ok=True)
        log_path = self.home / "logs" / spec.revision / "standby.log"
        handover = directory / f"{spec.revision}.json"
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            process = await self.template.spawn(argv, {**env, STANDBY_ENV: str(handover)}, log_path)
        except TemplateError as e:
            log.warning("standby not started", extra={"revision": spec.revision, "reason": str(e)})
            return
        standby = _Standby(spec, process, log_path, handover, LogFollower(log_path, offset))
        self._standbys[spec.revision] = standby
        try:
            standby.record.write_text(str(process.pid))
        except OSError as e:  # a standby no later daemon could find is not kept
            log.warning("standby not recorded", extra={"revision": spec.revision, "reason": str(e)})
            self.drop(spec.revision)
            return
        log.info("standby started", extra={"revision": spec.revision, "pid": process.pid})

    async def take(self, spec: ReplicaSpec, env: Mapping[str, str], log_path: Path) -> ReplicaProcess | None:
        """`spec.revision`'s standby, handed over to become a replica with `env` logging to `log_path`, once it
        has logged `serving` there (None if it has no standby ready for this spec: start a replica as usual)."""
        standby = self._standbys.pop(spec.revision, None)
        if standby is None:
            return None
        if standby.spec.digest != spec.digest or not standby.ready():
            self._stop(standby)
            return None
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            standby.handover.write_bytes(orjson.dumps({"log": str(log_path), "env": dict(env)}))
            standby.process.signal(signal.SIGUSR1)
            async with asyncio.timeout(self.start_timeout_s):
                failure = await _serving(standby.process, LogFollower(log_path, offset))
        except TimeoutError:
            failure = f"not serving within {self.start_timeout_s:g} s"
        except OSError as e:
            failure = str(e)
        except BaseException:  # cancelled (the replica is no longer wanted): half handed over, it is nobody's
            self._stop(standby)
            raise
        finally:
            standby.handover.unlink(missing_ok=True)
        if failure is not None:
            log.warning("standby not handed over", extra={"revision": spec.revision, "reason": failure})
            self._stop(standby)
            return None
        standby.record.unlink(missing_ok=True)  # a replica now, which the backend records
        log.info("standby handed over", extra={"revision": spec.revision, "pid": standby.process.pid})
        return standby.process

    def drop(self, revision: str) -> None:
        """Stop `revision`'s standby, if it has one (in the background)."""
        standby = self._standbys.pop(revision, None)
        if standby is not None:
            self._stop(standby)

    def memory(self) -> dict[str, tuple[int, int, int]]:
        """Each ready standby, by revision: (its pid, the private bytes it holds, its resident bytes)."""
        return {
            revision: (pid, private_bytes(pid), resident_bytes(pid))
            for revision, s in self._standbys.items()
            if s.ready() and (pid := s.process.pid)
        }

    async def close(self) -> None:
        """Stop every standby and wait until they have exited."""
        for revision in list(self._standbys):
            self.drop(revision)
        if self._stopping:
            await asyncio.wait(set(self._stopping))

    def _stop(self, standby: _Standby) -> None:
        standby.handover.unlink(missing_ok=True)
        task = asyncio.create_task(_stopped(standby), name=f"stop standby {standby.spec.revision}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)


async def _stopped(standby: _Standby) -> None:
    """Stop the standby's process, then forget its pid."""
    await standby.process.stop(_STOP_GRACE_S)
    standby.record.unlink(missing_ok=True)


async def _serving(process: ReplicaProcess, follower: LogFollower) -> str | None:
    """Wait for a handed-over standby's `serving` line: None once it has logged it, else what failed."""
    while not any(serving_ports(line) for line in follower.new_lines()):
        if process.exited():
            return "it exited before serving"
        await asyncio.sleep(_POLL_S)
    return None
