"""The local backend: replicas are `wharf serve` processes on this machine, supervised from the daemon's loop.

Each replica has a task that starts its process, learns its ports from the `serving` line of its log file (and,
meanwhile, how far the download of its model has got from its `downloading model` lines),
checks its readiness every `health_interval_s` and, once it ends, starts it again after its revision's backoff
(backoff.py: at once, then 10 s doubling up to 5 min, as Kubernetes' CrashLoopBackOff), so that crash-looping
revisions cannot keep the machine busy starting processes (the bookkeeping, readiness checks, retirement and
adoption are `supervision.Supervisor`'s, shared with the Ray backend). With
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
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from wharf.control.backends.cgroup import ReplicaCgroups, cgroups_or_none
from wharf.control.backends.logfile import LogFollower, download_progress, last_lines, serving_ports
from wharf.control.backends.memory import over_limit
from wharf.control.backends.process import Confinement, ReplicaProcess, is_replica_process
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.resources import MIB, VISIBLE_GPUS, CpuSpread, GpuPool, machine_gpus
from wharf.control.backends.settings import LocalBackendSettings
from wharf.control.backends.supervision import SupervisedReplica, Supervisor, cancel
from wharf.control.backends.standby import Standbys
from wharf.control.backends.template import ReplicaTemplate, TemplateError

__all__ = ["LocalBackend", "LocalBackendSettings", "ReplicaSpec", "ReplicaState", "serve_command"]

log = logging.getLogger(__name__)
_LOG_POLL_S = 0.05
_LOOPBACK = "127.0.0.1"


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
class _Replica(SupervisedReplica):
    """A replica as the backend tracks it; `state()` is its plain-data snapshot."""

    process: ReplicaProcess | None = None
    log_offset: int = 0  # where the current process's output begins in the log file
    gpus: tuple[str, ...] = ()  # what the machine gave it, for its whole life
    cpus: tuple[int, ...] = ()
    cgroup: Path | None = None
    oom_kills: int = 0  # its cgroup's count when its current process started
    killed: str | None = None  # why the backend killed its current process

    def state(self) -> ReplicaState:
        pid = self.process.pid if self.process else 0
        return ReplicaState(
            self.id, self.spec.revision, pid, self.http_port, self.grpc_port, self.ready, self.restarts,
            self.last_exit, self.started_at, self.last_error, self.spec.digest, self.backoff_s, self.pending, self.gpus,
            self.progress,
        )  # fmt: skip


class LocalBackend(Supervisor[_Replica]):
    """Runs the replicas of revisions as local processes, each in a session of its own.

    `on_change` (called with no arguments, from the loop) runs whenever a replica starts, becomes ready or
    unready, ends or is stopped, so that routes can be rebuilt from `replicas()`. The backend keeps no
    database: `replicas()` is what the store records, and `adopt()` takes it back after a daemon restart.
    Logs go to `home/logs/<revision>/<replica id>.log` (the template's to `home/logs/template.log`).
    """

    def __init__(
        self, home: Path, settings: LocalBackendSettings | None = None, on_change: Callable[[], object] | None = None
    ) -> None:
        super().__init__(home, settings or LocalBackendSettings(), on_change, _Replica)
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
        self.standbys = (
            Standbys(self._template, home, s.standby_max, s.standby_min_available, s.start_timeout_s)
            if self._template is not None and s.standby
            else None
        )

    async def close(self, stop_replicas: bool) -> None:
        """As `Supervisor.close`; the memory watchdog and the template stop too (the template's children, the
        replicas, live on without `stop_replicas`)."""
        await cancel([self._memory_watchdog] if self._memory_watchdog else [])
        await super().close(stop_replicas)
        if self.standbys is not None:
            await self.standbys.close()
        if self._template is not None:
            await self._template.close(wait=stop_replicas)

    async def scale(self, spec: ReplicaSpec, replicas: int) -> None:
        """As `Supervisor.scale`; a revision scaled to zero keeps a standby (standby.py) where it may."""
        await super().scale(spec, replicas)
        if replicas == 0 and self.standbys is not None:
            command, env = self._command(spec, "")
            await self.standbys.keep(spec, command[3:], env)

    async def remove(self, revision: str) -> None:
        """As `Supervisor.remove`; the revision's standby goes too."""
        await super().remove(revision)
        if self.standbys is not None:
            self.standbys.drop(revision)

    # -- one replica's life -------------------------------------------------------------------------------------
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
        command, env = self._command(r.spec, r.id, r.gpus)
        if self.standbys is not None and (standby := await self.standbys.take(r.spec, env, log_path)):
            return standby
        confine = Confinement(r.cpus, r.cgroup)
        if self._template is not None and self._template.can_fork(env):
            try:  # the arguments after `-m wharf.cli`
                return await self._template.spawn(command[3:], env, log_path, confine)
            except TemplateError as e:
                log.warning("replica template failed; starting a fresh interpreter", extra={"reason": str(e)})
        return ReplicaProcess.spawn(command, env, log_path, confine)

    def _command(
        self, spec: ReplicaSpec, replica_id: str, gpus: tuple[str, ...] = ()
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of a replica of `spec`."""
        empty = self.home / "repositories" / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        controlled = _CONTROLLED if spec.model_uri else _MULTI_MODEL
        env = {**os.environ, **spec.env, **controlled, VISIBLE_GPUS: ",".join(gpus), "WHARF_REPLICA": replica_id}
        if "PYTHONPATH" in spec.env and os.environ.get("PYTHONPATH"):  # the manifest's entries come first
            env["PYTHONPATH"] = os.pathsep.join([spec.env["PYTHONPATH"], os.environ["PYTHONPATH"]])
        return serve_command(spec, empty), env

    async def _watch(self, r: _Replica) -> None:
        """Check the replica's readiness every `health_interval_s` until its process ends."""
        assert r.process is not None
        while not r.process.exited():
            ok = await self._ready(_LOOPBACK, r.http_port)
            if r.process.exited():
                return
            self._checked(r, ok)
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

    # -- adoption and stopping ------------------------------------------------------------------------------------
    async def _live(self, record: ReplicaState) -> ReplicaProcess | None:
        return ReplicaProcess(record.pid) if is_replica_process(record.pid) else None

    async def _discard(self, live: ReplicaProcess) -> None:
        await live.stop(self.settings.kill_grace_s)

    async def _resume(self, r: _Replica, live: ReplicaProcess, record: ReplicaState) -> None:
        r.process = live
        await self._keep_placement(r, tuple(record.gpus))

    async def _halt(self, r: _Replica) -> None:
        """SIGTERM, then SIGKILL once the replica's drain timeout (plus `kill_grace_s`) has passed; then give back
        what it was given."""
        if r.process is not None:
            await r.process.stop(self._drain_s(r.spec) + self.settings.kill_grace_s)
            log.info("replica stopped", extra={"replica": r.id, "status": r.process.returncode})
        await self._release(r)

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
