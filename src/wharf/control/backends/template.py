"""Starting replicas from a warm template process (see `zygote`): a fork of a process that has already imported
the runtime serves in a fraction of the time a fresh interpreter needs to import it."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from wharf.control.backends.process import TEMPLATE_MODULE, Confinement, ReplicaProcess
from wharf.control.backends.resources import VISIBLE_GPUS

log = logging.getLogger(__name__)

# Read when the interpreter starts or a preloaded module is imported: a replica that wants other values than the
# template's needs an interpreter of its own. (PYTHONPATH is not among them: the child puts it on sys.path.) CUDA_
# too: the template sees no GPU, and a replica given GPUs starts fresh, as a process that uses CUDA must.
_READ_AT_IMPORT = re.compile(r"PYTHON(?!PATH$)|LD_|OMP_|OPENBLAS_|MKL_|GRPC_|MALLOC_|CUDA_|.*_NUM_THREADS$")
_POLL_S = 0.05


class TemplateError(Exception):
    """The template could not start a replica; a fresh interpreter should."""


class _Zygote:
    """One template process: the pipes to it, and what it has reported."""

    def __init__(
        self, popen: subprocess.Popen[bytes], pipe: asyncio.BaseTransport, lines: asyncio.StreamReader
    ) -> None:
        self.popen = popen
        self.pipe = pipe  # its stdout, read into `lines`
        self.ready = asyncio.Event()  # set once it is ready, or once it has exited
        self.serving = False  # ready and not exited
        self.answer: asyncio.Future[dict[str, Any]] | None = None  # to the request in flight
        self.statuses: dict[int, int] = {}  # exit status of each child that ended, by pid
        self.reader = asyncio.create_task(self._read(lines), name="replica template")

    async def _read(self, lines: asyncio.StreamReader) -> None:
        try:
            async for line in lines:
                self._receive(orjson.loads(line))
        except (OSError, ValueError) as e:
            log.warning("replica template unreadable", extra={"error": str(e)})
        finally:
            self.serving = False
            self.ready.set()
            if self.answer is not None and not self.answer.done():
                self.answer.set_exception(TemplateError("the template exited"))

    def _receive(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            self.statuses[message["exited"]] = message["status"]
        elif "ready" in message:
            log.info("replica template ready", extra={"pid": self.popen.pid, "skipped": message["skipped"]})
            self.serving = True
            self.ready.set()
        elif self.answer is not None and not self.answer.done():
            self.answer.set_result(message)


class _TemplateChild(ReplicaProcess):
    """A replica forked by a template, which reaps it and reports its exit status; once the template is gone,
    it is watched like any adopted process."""

    def __init__(self, pid: int, zygote: _Zygote) -> None:
        super().__init__(pid)
        self._zygote = zygote

    def _ended(self) -> bool:
        if self.pid in self._zygote.statuses:
            self.returncode = self._zygote.statuses.pop(self.pid)
            return True
        return self._zygote.reader.done() and super()._ended()


class ReplicaTemplate:
    """Forks replicas from a template process that imports `modules`, started on the first `spawn`.

    A template that fails (does not start, exits, or does not answer within `timeout_s`) is started again no
    sooner than `retry_after_s` later; until then `spawn` raises `TemplateError` at once.
    """

    def __init__(self, modules: Sequence[str], log_path: Path, timeout_s: float, retry_after_s: float) -> None:
        self.modules = tuple(modules)
        self.log_path = log_path
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._env = {**os.environ, VISIBLE_GPUS: ""}  # as every replica without GPUs has it
        self._lock = asyncio.Lock()
        self._zygote: _Zygote | None = None
        self._failed_at = -math.inf

    def can_fork(self, env: Mapping[str, str]) -> bool:
        """Whether a replica with the environment `env` may be forked from the template."""
        names = {name for name in (*env, *self._env) if _READ_AT_IMPORT.match(name)}
        return all(env.get(name) == self._env.get(name) for name in names)

    async def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, confine: Confinement = Confinement()
    ) -> ReplicaProcess:
        """A replica running `wharf ARGV` with exactly `env`, in a session of its own, output appended to
        `log_path`, confined (by itself, before it runs anything) as `confine` says. Should the caller be cancelled
        meanwhile, a replica already forked is killed."""
        cgroup = None if confine.cgroup is None else str(confine.cgroup)
        fields = {"argv": list(argv), "env": dict(env), "log": str(log_path), "cpus": confine.cpus, "cgroup": cgroup}
        request = orjson.dumps(fields) + b"\n"
        exchange = asyncio.ensure_future(self._exchange(request))
        try:
            return await asyncio.shield(exchange)
        except asyncio.CancelledError:
            exchange.add_done_callback(_kill_unwanted)
            raise

    async def close(self, wait: bool) -> None:
        """Take no more requests. The template exits once its last replica has ended (it reaps them until then);
        with `wait`, wait for that for up to `timeout_s`, then kill it."""
        zygote, self._zygote = self._zygote, None
        if zygote is None:
            return
        assert zygote.popen.stdin is not None
        with suppress(OSError):
            zygote.popen.stdin.close()
        if wait:
            with suppress(TimeoutError):
                async with asyncio.timeout(self.timeout_s):
                    while zygote.popen.poll() is None:
                        await asyncio.sleep(_POLL_S)
            if zygote.popen.poll() is None:
                zygote.popen.kill()
                zygote.popen.wait()
        zygote.reader.cancel()
        with suppress(asyncio.CancelledError):
            await zygote.reader
        zygote.pipe.close()

    async def _exchange(self, request: bytes) -> ReplicaProcess:
        async with self._lock:
            zygote = await self._running()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await zygote.ready.wait()
                    if not zygote.serving:
                        raise TemplateError(f"the template exited; see {self.log_path}")
                    zygote.answer = asyncio.get_running_loop().create_future()
                    assert zygote.popen.stdin is not None
                    zygote.popen.stdin.write(request)
                    zygote.popen.stdin.flush()
                    answer = await zygote.answer
            except TimeoutError:
                zygote.popen.kill()
                raise TemplateError(f"no answer from the template within {self.timeout_s:g} s; killed it") from None
            except OSError as e:
                raise TemplateError(f"cannot reach the template: {e}") from None
        if "pid" not in answer:
            raise TemplateError(answer.get("error", f"unexpected answer {answer}"))
        return _TemplateChild(answer["pid"], zygote)

    async def _running(self) -> _Zygote:
        """The template, started if there is none (and none failed recently)."""
        now = asyncio.get_running_loop().time()
        if self._zygote is not None and self._zygote.reader.done():
            self._zygote, self._failed_at = None, now
        if self._zygote is None:
            if now - self._failed_at < self.retry_after_s:
                raise TemplateError(f"the template failed less than {self.retry_after_s:g} s ago")
            try:
                self._zygote = await self._start()
            except OSError as e:
                self._failed_at = now
                raise TemplateError(f"cannot start the template: {e}") from None
        return self._zygote

    async def _start(self) -> _Zygote:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", TEMPLATE_MODULE, *self.modules], env=self._env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log_file, process_group=0,  # a Ctrl-C meant for the daemon skips it
            )  # fmt: skip
        lines = asyncio.StreamReader()
        assert popen.stdout is not None
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(lines), popen.stdout
        )
        log.info("replica template started", extra={"pid": popen.pid})
        return _Zygote(popen, pipe, lines)


def _kill_unwanted(exchange: asyncio.Future[ReplicaProcess]) -> None:
    """Kill the replica an abandoned request started: the forked process itself (the template answers right after
    the fork, so it may not lead its own session yet, and a signal to that group would miss it) and its group."""
    if not exchange.cancelled() and exchange.exception() is None:
        pid = exchange.result().pid
        for kill in (os.kill, os.killpg):
            with suppress(ProcessLookupError):
                kill(pid, signal.SIGKILL)
