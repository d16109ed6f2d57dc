"""The local backend: replicas are `wharf serve` processes on this machine, supervised from the daemon's loop.

Each replica has a task that starts its process, learns its ports from the `serving` line of its log file (and,
meanwhile, how far the download of its model has got from its `downloading model` lines),
checks its readiness every `health_interval_s` and, once it ends, starts it again after its revision's backoff
(backoff.py: at once, then 10 s doubling up to 5 min, as Kubernetes' CrashLoopBackOff), so that crash-looping
revisions cannot keep the machine busy starting processes. With
`prewarm`, a process is forked from a template that has already imported the runtime, or started as a fresh
interpreter where that fails.

A replica's `resources` (resources.py) are enforced here. Before its first start it is given, for its whole life,
the GPUs it asks for (its CUDA_VISIBLE_DEVICES; a replica that asks for none sees none), waiting `Pending` while
too few are free; ceil(cpu limit) cores as its CPU affinity, spread over the machine; and, where the machine has
cgroups v2 to spare (cgroup.py), a cgroup that holds it to its memory and cpu limits. Without a cgroup, a watchdog
compares the memory of the replicas with a memory limit with it every `memory_check_s` (memory.py) and kills a
replica over it: the replica ends `OOMKilled` and is restarted like any replica that ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import aiohttp

from wharf.control.backends.backoff import RestartBackoff
from wharf.control.backends.cgroup import ReplicaCgroups, cgroups_or_none
from wharf.control.backends.logfile import LogFollower, download_progress, last_lines, serving_ports
from wharf.control.backends.memory import over_limit
from wharf.control.backends.process import Confinement, ReplicaProcess, is_replica_process
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.resources import MIB, VISIBLE_GPUS, CpuSpread, GpuPool, machine_gpus
from wharf.control.backends.settings import LocalBackendSettings
from wharf.control.backends.template import ReplicaTemplate, TemplateError

__all__ = ["LocalBackend", "LocalBackendSettings", "ReplicaSpec", "ReplicaState", "serve_command"]

log = logging.getLogger(__name__)
_LOG_POLL_S = 0.05
_DRAIN_ENV = "WHARF_DRAIN_TIMEOUT_S"


# What every replica runs with, whatever its spec says: its models are the daemon's to load and unload; a
# multi-model replica's (no model_uri) are its TrainedModels, which the daemon loads and unloads over that API.
_CONTROLLED = {"WHARF_REPOSITORY_API": "off"}
_MULTI_MODEL = {"WHARF_REPOSITORY_API": "on"}


def serve_command(spec: ReplicaSpec, empty_repository: Path | None = None, host: str = "127.0.0.1") -> list[str]:
    """The command line of one replica of `spec`, listening on `host`; the server picks free ports and logs them. The model's URI comes
    after `--`, so that one beginning with `-` is still the URI, never an option. A multi-model replica (no
    model_uri) serves `empty_repository`, an empty directory, its models registered later."""
    if not spec.model_uri:
        if empty_repository is None:
            raise ValueError("a multi-model replica serves an empty repository: give its directory")
        named: tuple[str, ...] = ()
        model_uri = str(empty_repository)
    else:
        named, model_uri = ("--name", spec.model_name), spec.model_uri
    runtime = ("--runtime", spec.runtime) if spec.runtime else ()
    return [
        sys.executable, "-m", "wharf.cli", "serve", *named,
        "--host", host, "--http-port", "0", "--grpc-port", "0", *runtime, *spec.args, "--", model_uri,
    ]  # fmt: skip


@dataclass(eq=False)
class _Replica:
    """A replica as the backend tracks it; `state()` is its plain-data snapshot."""

    id: str
    spec: ReplicaSpec
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    process: ReplicaProcess | None = None
    http_port: int = 0
    grpc_port: int = 0
    ready: bool = False
    started_at: float = 0.0
    ready_at: float | None = None  # monotonic time its current process first passed a readiness check
    backoff_s: float = 0.0  # the restart delay it is waiting out
    failed_checks: int = 0
    log_offset: int = 0  # where the current process's output begins in the log file
    task: asyncio.Task[None] | None = None
    pending: str | None = None  # what it waits for before its first start
    gpus: tuple[str, ...] = ()  # what the machine gave it, for its whole life
    cpus: tuple[int, ...] = ()
    cgroup: Path | None = None
    oom_kills: int = 0  # its cgroup's count when its current process started
    killed: str | None = None  # why the backend killed its current process
    progress: str | None = None  # what its process, starting, last said of its progress

    def state(self) -> ReplicaState:
        pid = self.process.pid if self.process else 0
        return ReplicaState(
            self.id, self.spec.revision, pid, self.http_port, self.grpc_port, self.ready, self.restarts,
            self.last_exit, self.started_at, self.last_error, self.spec.digest, self.backoff_s, self.pending, self.gpus,
            self.progress,
        )  # fmt: skip


class LocalBackend:
    """Runs the replicas of revisions as local processes, each in a session of its own.

    `on_change` (called with no arguments, from the loop) runs whenever a replica starts, becomes ready or
    unready, ends or is stopped, so that routes can be rebuilt from `replicas()`. The backend keeps no
    database: `replicas()` is what the store records, and `adopt()` takes it back after a daemon restart.
    Logs go to `home/logs/<revision>/<replica id>.log` (the template's to `home/logs/template.log`).
    """

    def __init__(
        self, home: Path, settings: LocalBackendSettings | None = None, on_change: Callable[[], object] | None = None
    ) -> None:
        self.home = home
        self.settings = settings or LocalBackendSettings()
        self.on_change = on_change
        self._replicas: dict[str, _Replica] = {}
        self._backoffs: dict[str, RestartBackoff] = {}  # by revision, kept while it is scaled to zero
        self._stopping: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self._cpus = CpuSpread(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
        self._gpus: GpuPool | None = None  # found on first use
        self._gpus_freed = asyncio.Condition()  # guards `_gpus`
        self._memory_watchdog: asyncio.Task[None] | None = None
        s = self.settings
        self._template = (
            ReplicaTemplate(s.prewarm_modules, home / "logs" / "template.log", s.prewarm_timeout_s, s.prewarm_retry_s)
            if s.prewarm
            else None
        )

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
        current = [r for r in self._replicas.values() if r.spec.revision == spec.revision]
        for _ in range(replicas - len(current)):
            self._launch(_Replica(self._new_id(spec.revision), spec))
        retired_first = sorted(current, key=lambda r: (r.ready, r.pending is None, -r.started_at))
        surplus = retired_first[: max(len(current) - replicas, 0)]
        self._retire(surplus)

    async def remove(self, revision: str) -> None:
        """Stop every replica of `revision` (in the background, as `scale` does), and forget its backoff."""
        self._retire([r for r in self._replicas.values() if r.spec.revision == revision])
        self._backoffs.pop(revision, None)

    async def adopt(self, records: Sequence[ReplicaState], specs: Mapping[str, ReplicaSpec]) -> None:
        """Take back the replicas a previous daemon recorded.

        A replica whose process is alive, was started with the spec its revision has in `specs` (the recorded
        `spec_digest` says) and answers its readiness check on the recorded port is watched again as it is; the
        others are started anew with that spec (a live one is stopped first), counting a restart. A record whose
        revision is not in `specs` is stopped if alive, and forgotten.
        """
        fresh = [record for record in records if record.id not in self._replicas]
        await asyncio.gather(*(self._take_over(record, specs.get(record.revision)) for record in fresh))

    async def close(self, stop_replicas: bool) -> None:
        """Stop supervising, after replicas already stopping have finished; `on_change` is no longer called.

        With `stop_replicas`, every replica is stopped (drained) and forgotten. Without, the processes keep
        running for the next daemon to `adopt`, and `replicas()` still lists them for the store to record.
        """
        self._closed = True
        if stop_replicas:
            self._retire(list(self._replicas.values()))
        else:
            await _cancel([r.task for r in self._replicas.values() if r.task])
        await _cancel([self._memory_watchdog] if self._memory_watchdog else [])
        if self._stopping:
            await asyncio.wait(set(self._stopping))
        if self._template is not None:
            await self._template.close(wait=stop_replicas)
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- one replica's life -------------------------------------------------------------------------------------
    def _launch(self, r: _Replica) -> None:
        if self._closed:
            raise RuntimeError("the backend is closed")
        self._replicas[r.id] = r
        r.task = asyncio.create_task(self._supervise(r), name=f"replica {r.id}")

    async def _supervise(self, r: _Replica) -> None:
        """Keep the replica running: start it (unless adopted running) once it has its share of the machine (and,
        new to a revision whose restarts back off, its turn), watch it, and once it ends start it again after its
        revision's backoff."""
        backoff = self._backoff(r.spec.revision)
        if r.process is None:
            await self._place(r)
            await self._back_off(r, backoff.wait_s())
        while True:
            failure = None if r.process is not None else await self._start(r)
            if failure is None:
                await self._watch(r)
                failure = "exited"
            delay = backoff.ended(None if r.ready_at is None else time.monotonic() - r.ready_at)
            self._ended(r, failure, delay)
            await self._back_off(r, delay)
            r.restarts += 1

    async def _back_off(self, r: _Replica, delay: float) -> None:
        """Wait `delay` seconds before starting the replica, shown in its state meanwhile."""
        if delay <= 0:
            return
        if r.backoff_s != delay:
            r.backoff_s = delay
            self._changed()
        await asyncio.sleep(delay)
        r.backoff_s = 0.0

    async def _start(self, r: _Replica) -> str | None:
        """Start the replica's process and wait for its `serving` line (its progress shown meanwhile): None once
        serving, else what failed."""
        path = self.log_path(r.spec.revision, r.id)
        r.log_offset = path.stat().st_size if path.exists() else 0
        r.started_at = time.time()
        r.oom_kills = ReplicaCgroups.oom_kills(r.cgroup) if r.cgroup else 0
        try:
            r.process = await self._spawn(r, path)
        except OSError as e:
            return f"could not start: {e}"
        log.info("replica started", extra={"replica": r.id, "pid": r.process.pid})
        if r.spec.resources.memory and r.cgroup is None:
            self._watch_memory()
        self._changed()
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                ports = await _serving_ports(r.process, LogFollower(path, r.log_offset), lambda p: self._progress(r, p))
        except TimeoutError:
            await r.process.kill()
            return f"not serving within {self.settings.start_timeout_s:g} s, killed"
        finally:
            r.progress = None
        if ports is None:
            return "exited before serving"
        r.http_port, r.grpc_port = ports
        return None

    async def _spawn(self, r: _Replica, log_path: Path) -> ReplicaProcess:
        """A process for the replica, confined to what it was given: forked from the template if it can, else a
        fresh interpreter."""
        empty = self.home / "repositories" / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        command = serve_command(r.spec, empty)
        controlled = _CONTROLLED if r.spec.model_uri else _MULTI_MODEL
        env = {**os.environ, **r.spec.env, **controlled, VISIBLE_GPUS: ",".join(r.gpus), "WHARF_REPLICA": r.id}
        if "PYTHONPATH" in r.spec.env and os.environ.get("PYTHONPATH"):  # the manifest's entries come first
            env["PYTHONPATH"] = os.pathsep.join([r.spec.env["PYTHONPATH"], os.environ["PYTHONPATH"]])
        confine = Confinement(r.cpus, r.cgroup)
        if self._template is not None and self._template.can_fork(env):
            try:  # the arguments after `-m wharf.cli`
                return await self._template.spawn(command[3:], env, log_path, confine)
            except TemplateError as e:
                log.warning("replica template failed; starting a fresh interpreter", extra={"reason": str(e)})
        return ReplicaProcess.spawn(command, env, log_path, confine)

    async def _watch(self, r: _Replica) -> None:
        """Check the replica's readiness every `health_interval_s` until its process ends."""
        assert r.process is not None
        while not r.process.exited():
            ok = await self._ready(r.http_port)
            if r.process.exited():
                return
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
            await asyncio.sleep(self.settings.health_interval_s)

    def _ended(self, r: _Replica, what: str, delay: float) -> None:
        """Record why the replica's process ended (or never started), with the last lines of its log, and the
        `delay` before it starts again."""
        r.last_exit = r.process.returncode if r.process else None
        what = r.killed or self._oom_killed(r) or what
        r.killed = None
        status = "" if r.last_exit is None else f" (status {r.last_exit})"
        tail = last_lines(self.log_path(r.spec.revision, r.id), r.log_offset, self.settings.error_lines)
        r.last_error = f"{what}{status}" + (f":\n{tail}" if tail else "")
        r.process, r.http_port, r.grpc_port, r.ready, r.failed_checks, r.ready_at = None, 0, 0, False, 0, None
        r.backoff_s = delay
        extra = {"replica": r.id, "reason": what, "status": r.last_exit, "restart_in_s": delay}
        log.warning("replica ended", extra=extra)
        self._changed()

    async def _take_over(self, record: ReplicaState, spec: ReplicaSpec | None) -> None:
        process = ReplicaProcess(record.pid) if is_replica_process(record.pid) else None
        same_spec = spec is not None and record.spec_digest == spec.digest
        healthy = process is not None and same_spec and await self._ready(record.http_port)
        if process is not None and not healthy:
            why = "its revision is gone" if spec is None else "not ready" if same_spec else "started with another spec"
            log.info("replica not adopted; stopping it", extra={"replica": record.id, "reason": why})
            await process.stop(self.settings.kill_grace_s)
        if spec is None:
            return
        r = _Replica(record.id, spec, record.restarts, record.last_exit, record.last_error)
        if healthy:
            r.process, r.http_port, r.grpc_port = process, record.http_port, record.grpc_port
            r.started_at, r.ready, r.ready_at = record.started_at, True, time.monotonic()
            await self._keep_placement(r, tuple(record.gpus))
            self._backoff(spec.revision).ready()
            log.info("replica adopted", extra={"replica": r.id, "pid": record.pid})
        else:
            r.restarts += 1
        self._launch(r)
        self._changed()

    # -- stopping -----------------------------------------------------------------------------------------------
    def _retire(self, replicas: list[_Replica]) -> None:
        """Take `replicas` out of the list and stop them in the background."""
        for r in replicas:
            del self._replicas[r.id]
            task = asyncio.create_task(self._stop(r), name=f"stop replica {r.id}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        if replicas:
            self._changed()

    async def _stop(self, r: _Replica) -> None:
        """SIGTERM, then SIGKILL once the replica's drain timeout (plus `kill_grace_s`) has passed."""
        await _cancel([r.task] if r.task else [])
        if r.process is not None:
            await r.process.stop(self._drain_s(r.spec) + self.settings.kill_grace_s)
            log.info("replica stopped", extra={"replica": r.id, "status": r.process.returncode})
        await self._release(r)

    def _drain_s(self, spec: ReplicaSpec) -> float:
        try:
            return float(spec.env[_DRAIN_ENV])
        except (KeyError, ValueError):
            return self.settings.drain_timeout_s

    # -- the machine's share of each replica ---------------------------------------------------------------------
    async def _place(self, r: _Replica) -> None:
        """Give the replica what its resources ask of the machine, for its whole life: its GPUs (it waits, pending,
        until enough are free), its cores and its cgroup."""
        resources = r.spec.resources
        if resources.gpus:
            async with self._gpus_freed:
                gpus = await self._gpu_pool()
                while (taken := gpus.take(resources.gpus)) is None:
                    self._pending(r, gpus.shortage(resources.gpus))
                    await self._gpus_freed.wait()
            r.gpus = taken
            self._pending(r, None)
        if resources.cores and self._cpus is not None:
            r.cpus = self._cpus.take(resources.cores)
        if (resources.memory or resources.cpus) and self._cgroups is not None:
            try:
                r.cgroup = self._cgroups.create(r.id, resources)
            except OSError as e:
                log.warning("replica cgroup not made; limits without it", extra={"replica": r.id, "error": str(e)})

    async def _keep_placement(self, r: _Replica, gpus: tuple[str, ...]) -> None:
        """Count what an adopted replica, running, was given by an earlier daemon (its GPUs as recorded)."""
        if gpus:
            async with self._gpus_freed:
                (await self._gpu_pool()).hold(gpus)
            r.gpus = gpus
        if r.spec.resources.cores and self._cpus is not None and r.process is not None:
            r.cpus = tuple(sorted(os.sched_getaffinity(r.process.pid)))
            self._cpus.hold(r.cpus)
        limited = r.spec.resources.memory or r.spec.resources.cpus
        if limited and self._cgroups is not None and (cgroup := self._cgroups.base / r.id).is_dir():
            r.cgroup = cgroup
        if r.spec.resources.memory and r.cgroup is None:
            self._watch_memory()

    async def _release(self, r: _Replica) -> None:
        """Give back what a stopped replica was given: its GPUs to the replicas waiting for them."""
        if r.gpus:
            async with self._gpus_freed:
                assert self._gpus is not None
                self._gpus.release(r.gpus)
                self._gpus_freed.notify_all()
        if r.cpus and self._cpus is not None:
            self._cpus.release(r.cpus)
        if r.cgroup is not None:
            ReplicaCgroups.remove(r.cgroup)
        r.gpus, r.cpus, r.cgroup = (), (), None

    async def _gpu_pool(self) -> GpuPool:
        """The GPUs replicas may be given, found on first use (call with `_gpus_freed` held)."""
        if self._gpus is None:
            self._gpus = await asyncio.to_thread(machine_gpus, self.settings.resources.gpus)
            log.info("GPUs for replicas", extra={"gpus": list(self._gpus.ids), "source": self._gpus.source})
        return self._gpus

    @cached_property
    def _cgroups(self) -> ReplicaCgroups | None:
        """The replicas' cgroups, looked for when a replica with limits first needs one."""
        return cgroups_or_none(self.settings.resources.cgroup)

    def _pending(self, r: _Replica, reason: str | None) -> None:
        if r.pending != reason:
            r.pending = reason
            self._changed()

    def _progress(self, r: _Replica, progress: str) -> None:
        if r.progress != progress:
            r.progress = progress
            self._changed()

    def _oom_killed(self, r: _Replica) -> str | None:
        """Why the replica's process ended, when its cgroup says the kernel killed it for its memory limit."""
        if r.cgroup is None or ReplicaCgroups.oom_kills(r.cgroup) <= r.oom_kills:
            return None
        return f"OOMKilled: memory over the limit of {_mib(r.spec.resources.memory or 0)} (the cgroup's memory.max)"

    def _watch_memory(self) -> None:
        """Run the memory watchdog, if it is not running."""
        if self._memory_watchdog is None or self._memory_watchdog.done():
            self._memory_watchdog = asyncio.create_task(self._watch_memory_limits(), name="replica memory watchdog")

    async def _watch_memory_limits(self) -> None:
        """Every `memory_check_s`, while replicas with a memory limit (and no cgroup) run, kill those whose
        processes hold more memory than their limit: each ends as OOMKilled and is restarted after its backoff."""
        while limits := {
            r.process.pid: r.spec.resources.memory
            for r in self._replicas.values()
            if r.process is not None and r.cgroup is None and r.spec.resources.memory and r.killed is None
        }:
            over = await asyncio.to_thread(over_limit, limits)
            for r in self._replicas.values():
                if r.process is None or r.killed is not None or (held := over.get(r.process.pid)) is None:
                    continue
                limit = r.spec.resources.memory or 0
                r.killed = f"OOMKilled: memory {_mib(held)} over the limit of {_mib(limit)}"
                log.warning("replica over its memory limit; killed", extra={"replica": r.id, "bytes": held})
                r.process.signal(signal.SIGKILL)
            await asyncio.sleep(self.settings.resources.memory_check_s)

    # -- small parts --------------------------------------------------------------------------------------------
    async def _ready(self, port: int) -> bool:
        """Whether the model server on `port` answers its readiness check in time."""
        if port == 0:
            return False
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.health_timeout_s),
                connector=aiohttp.TCPConnector(force_close=True),  # no pooled connection to a dead replica
            )
        try:
            async with self._http.get(f"http://127.0.0.1:{port}/v2/health/ready") as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

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


async def _serving_ports(
    process: ReplicaProcess, follower: LogFollower, progress: Callable[[str], None]
) -> tuple[int, int] | None:
    """The ports from the process's `serving` line; None if it ends without logging one. What each `downloading
    model` line before it says goes to `progress`."""
    while True:
        exited = process.exited()
        for line in follower.new_lines():
            if ports := serving_ports(line):
                return ports
            if (said := download_progress(line)) is not None:
                progress(said)
        if exited:
            return None
        await asyncio.sleep(_LOG_POLL_S)


def _mib(size: int) -> str:
    return f"{size / MIB:.0f} MiB"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
