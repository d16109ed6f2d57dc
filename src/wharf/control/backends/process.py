"""One replica's OS process: a child started here, or one adopted from an earlier daemon and known by its pid."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

_POLL_S = 0.05
_KILL_WAIT_S = 5.0
TEMPLATE_MODULE = "wharf.control.backends.zygote"  # run as the replica template; see there
_TEMPLATE_COMMAND = f"-m\0{TEMPLATE_MODULE}\0".encode()  # the command line of a replica forked by the template


@dataclass(frozen=True)
class Confinement:
    """What holds a new replica's process to its limits: the CPUs it may run on (none: any), the cgroup it joins."""

    cpus: tuple[int, ...] = ()
    cgroup: Path | None = None

    def apply(self, pid: int) -> None:
        """Confine process `pid`, before it starts threads or processes (they inherit both); raises OSError."""
        if self.cpus:
            os.sched_setaffinity(pid, self.cpus)
        if self.cgroup is not None:
            (self.cgroup / "cgroup.procs").write_text(str(pid))


class ReplicaProcess:
    """A replica's process, watched without blocking: its end is noticed by polling (a child is reaped then),
    and signals go to its whole process group, which it leads."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None  # once exited; stays None for an adopted process that is not a child
        self._popen = popen
        self._exited = False

    @classmethod
    def spawn(
        cls, command: Sequence[str], env: Mapping[str, str], log_path: Path, confine: Confinement | None = None
    ) -> ReplicaProcess:
        """Start `command` in a session of its own (a Ctrl-C meant for the daemon does not reach it), its output
        appended to `log_path`, and `confine` it (at once: the interpreter it runs starts no thread or process
        before reading its code). Raises OSError; a process that cannot be confined is killed."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                command, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        if confine is not None:
            try:
                confine.apply(popen.pid)
            except OSError:
                popen.kill()
                popen.wait()
                raise
        return cls(popen.pid, popen)

    def exited(self) -> bool:
        if not self._exited:
            self._exited = self._ended()
        return self._exited

    def _ended(self) -> bool:
        if self._popen is not None:
            self.returncode = self._popen.poll()
            return self.returncode is not None
        return not self._adopted_alive()

    def _adopted_alive(self) -> bool:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not our child: ask whether the pid exists at all
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        if pid == 0:
            return True
        self.returncode = os.waitstatus_to_exitcode(status)
        return False

    def signal(self, signum: int) -> None:
        if not self.exited():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to end; whether it did."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.exited():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    async def stop(self, grace_s: float) -> None:
        """SIGTERM (the model server drains), then SIGKILL if it is still running after `grace_s`."""
        self.signal(signal.SIGTERM)
        if not await self.wait(grace_s):
            await self.kill()

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait(_KILL_WAIT_S)


def is_replica_process(pid: int) -> bool:
    """Whether `pid` is a live replica: the leader of its own session, running `wharf.cli serve` or forked from
    the replica template (the command line is checked where /proc exists). Guards against signalling a process
    that merely reused the pid."""
    return runs(pid, (b"wharf.cli\0serve\0", _TEMPLATE_COMMAND))


def runs(pid: int, commands: tuple[bytes, ...]) -> bool:
    """Whether `pid` is alive, leads its own session (as `ReplicaProcess.spawn` starts processes) and has one of
    `commands` in its command line (NUL-separated; checked where /proc exists)."""
    if pid <= 0:
        return False
    try:
        if os.getsid(pid) != pid:
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, PermissionError):
        return False
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc on this system: the session check must do
    return any(command in cmdline for command in commands)
