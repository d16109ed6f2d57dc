"""One replica on a Ray node: an actor that runs Wharf's model server (`wharf serve`, the command line the local
backend builds) as a child process on its node, and says where it listens.

The server runs as a child, not in the actor's own process: it is then the same program, with its own event loop,
worker threads and signals, as everywhere else (Ray's worker process owns its signals and runs a loop of its own),
its output goes to a log file like a local replica's, and a drain is a SIGTERM as for a local replica. The child
leads a session of its own and is killed by the kernel when the actor's process ends (PR_SET_PDEATHSIG), so a dead
actor or node leaves no server behind. The actor itself asks nothing of the node but what the backend reserved
for it (CPU, memory, GPUs: Ray sets CUDA_VISIBLE_DEVICES for it, which the child inherits).

Its methods are coroutines (an async actor), so that `ended()` can wait on the child while `stop()` is called.
The model's artifacts are fetched by the child, on this node, through its storage cache, as `wharf serve` does.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wharf.control.backends.logfile import LogFollower, download_progress, last_lines, serving_ports
from wharf.control.backends.process import ReplicaProcess
from wharf.eventing.statusline import status_port

_POLL_S = 0.05
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child, before exec
    """Have the kernel SIGKILL this process when the thread that forked it (the actor's) ends."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ReplicaActor:
    """A `wharf serve` child on this node (made a Ray actor by the backend: `ray.remote(ReplicaActor)`)."""

    def __init__(self) -> None:
        self._process: ReplicaProcess | None = None
        self._log_path: Path | None = None
        self._offset = 0
        self._progress: str | None = None

    async def where(self) -> dict[str, str]:
        """The node it runs on: answers as soon as Ray has placed the actor (the backend's sign that it is not
        pending)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": ray.util.get_node_ip_address()}

    async def start(
        self,
        arguments: Sequence[str],
        env: Mapping[str, str],
        log_path: str,
        timeout_s: float,
        host_env: str | None = None,
    ) -> dict[str, Any]:
        """Run `python ARGUMENTS` with `env` over the node's environment, its output appended to `log_path` on this
        node, until it logs its `serving` line; this node's address is its `--host` argument, or, with `host_env`
        (a Kafka consumer: WHARF_KAFKA_STATUS_HOST), that variable. Returns its `host`, `http_port`, `grpc_port`
        (a consumer's status port is its `http_port`, its `grpc_port` 0) and `pid`, or the `error` that kept it
        from serving (with its last log lines)."""
        import ray

        host = ray.util.get_node_ip_address()
        command = [sys.executable, *arguments]
        if host_env:
            env = {**env, host_env: host}
        else:
            command[command.index("--host") + 1] = host
            if "--name" not in command:  # a multi-model replica serves an empty repository, made here on its node
                Path(command[-1]).mkdir(parents=True, exist_ok=True)
        path = Path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log_path, self._offset = path, path.stat().st_size if path.exists() else 0
        with open(path, "ab") as log:
            popen = subprocess.Popen(
                command,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._process = ReplicaProcess(popen.pid, popen)
        follower = LogFollower(path, self._offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            exited = self._process.exited()
            for line in follower.new_lines():
                if ports := serving_ports(line) or ((port, 0) if (port := status_port(line)) else None):
                    self._progress = None
                    return {"host": host, "http_port": ports[0], "grpc_port": ports[1], "pid": popen.pid}
                if (said := download_progress(line)) is not None:
                    self._progress = said
            if exited:
                return {"error": self._why(f"exited before serving (status {self._process.returncode})")}
            await asyncio.sleep(_POLL_S)
        await self._process.kill()
        return {"error": self._why(f"not serving within {timeout_s:g} s, killed")}

    async def progress(self) -> str | None:
        """What the starting server last said of its progress (`downloading model 40% of 1.2 GB`)."""
        return self._progress

    async def ended(self) -> int | None:
        """Wait for the server to end; its exit status (negative: the signal that killed it)."""
        while self._process is not None and not self._process.exited():
            await asyncio.sleep(_POLL_S)
        return None if self._process is None else self._process.returncode

    async def last_lines(self, count: int) -> str:
        """The last lines of its log (since its start) that may say why it ended."""
        return "" if self._log_path is None else last_lines(self._log_path, self._offset, count)

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM (the server drains), SIGKILL after `grace_s`; its exit status."""
        if self._process is None:
            return None
        await self._process.stop(grace_s)
        return self._process.returncode

    def _why(self, what: str) -> str:
        assert self._log_path is not None
        tail = last_lines(self._log_path, self._offset, 20)
        return what + (f":\n{tail}" if tail else "")
