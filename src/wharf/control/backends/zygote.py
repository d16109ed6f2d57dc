"""The replica template process: imports the model server's stack once, then forks replicas from itself.

Run by the local backend (`template.py`) as `python -m wharf.control.backends.zygote MODULE...`. It imports each
MODULE (one that is missing or fails is skipped: its replicas import it themselves), answers `{"ready": true,
"skipped": [...]}` and then reads start requests from stdin, one JSON line each: `{"argv": [...], "env": {...},
"log": "path", "cpus": [...], "cgroup": "path"}`, a `wharf` command line with its whole environment, its log file,
the CPUs it may run on (empty: any) and the cgroup it joins (null: none). For each it forks a child that confines
itself so and runs that command in a session of its own, and answers `{"pid": N}` (or `{"error": "..."}`) on stdout; when
a child ends it reports `{"exited": N, "status": S}`, S as Popen's returncode. Once stdin closes it takes no more
requests and exits when its last child has ended (it reaps them, so none is left a zombie).

Nothing here starts a thread, an event loop or a gRPC channel or server before forking: each child does that
itself, as a fresh `wharf serve` would.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

_REAP_EVERY_S = 0.05


def main(modules: Sequence[str]) -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever an import prints goes to the log, not among the answers
    from wharf.server import imports

    imports.prepare()  # as `wharf serve` does before anything else
    skipped = _preload(modules)
    gc.freeze()  # the children's collections leave the preloaded objects (and their shared pages) alone
    _send(answers, {"ready": True, "skipped": skipped})
    pending, requests_open, children = b"", True, 0
    while requests_open or children:
        readable, _, _ = select.select([0] if requests_open else [], [], [], _REAP_EVERY_S)
        if readable:
            chunk = os.read(0, 1 << 16)
            requests_open = bool(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                answer = _fork(json.loads(line), answers.fileno())
                children += "pid" in answer
                _send(answers, answer)
        children -= _reap(answers)


def _preload(modules: Sequence[str]) -> list[str]:
    skipped = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:
            skipped.append(f"{name}: {e}")
    return skipped


def _fork(request: dict[str, Any], answers_fd: int) -> dict[str, Any]:
    """Fork a child that runs the requested command: `{"pid": N}`, or `{"error": ...}` if it could not."""
    try:
        os.makedirs(os.path.dirname(request["log"]), exist_ok=True)
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        return {"error": f"cannot open the log: {e}"}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(log_fd)
        return {"error": f"cannot fork: {e}"}
    if pid == 0:
        _run_replica(request, log_fd, answers_fd)
    os.close(log_fd)
    return {"pid": pid}


def _run_replica(request: dict[str, Any], log_fd: int, answers_fd: int) -> NoReturn:
    """In the child: become what `python -m wharf.cli ARGV` with the request's environment would be (confined as it
    says), run it, and exit."""
    argv: list[str] = request["argv"]
    env: dict[str, str] = request["env"]
    code = 1
    try:
        os.setsid()
        os.close(answers_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        if request.get("cpus"):
            os.sched_setaffinity(0, request["cpus"])
        if request.get("cgroup"):
            with open(os.path.join(request["cgroup"], "cgroup.procs"), "w") as procs:
                procs.write(str(os.getpid()))
        os.environ.clear()
        os.environ.update(env)
        sys.path[1:1] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.argv = ["wharf", *argv]
        if "numpy" in sys.modules:  # its global generator, unlike `random`'s, is not reseeded by a fork
            sys.modules["numpy"].random.seed()
        from wharf.cli.entry import run

        run(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(answers: Any) -> int:
    """Reap the children that have ended and report each; how many there were."""
    ended = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended += 1
        _send(answers, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def _send(answers: Any, message: dict[str, Any]) -> None:
    try:
        answers.write(json.dumps(message) + "\n")
    except OSError:
        pass  # the backend is gone; its replicas are still reaped here


if __name__ == "__main__":
    main(sys.argv[1:])
