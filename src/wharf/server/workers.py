"""Several model-server processes on the same ports (SO_REUSEPORT), supervised by a parent process.

The parent starts each worker as a fresh interpreter running the same command with one worker, forwards
SIGTERM/SIGINT to them, restarts a worker that dies unexpectedly (with backoff), and exits once all have stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

log = logging.getLogger("wharf.workers")

REUSE_PORT_ENV = "WHARF_REUSE_PORT"
_MAX_BACKOFF_S = 30.0


def supervise(argv: list[str], count: int) -> int:
    """Run `count` copies of `wharf <argv>` (which must ask for one worker) until told to stop."""
    with tempfile.TemporaryDirectory(prefix="wharf-metrics-") as metrics_dir:
        env = {**os.environ, REUSE_PORT_ENV: "1", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        command = [sys.executable, "-m", "wharf.cli", *argv]
        stopping = False

        def stop(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

        procs = [subprocess.Popen(command, env=env) for _ in range(count)]
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        backoff = [1.0] * count
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                return max(codes)  # type: ignore[type-var]
            for i, code in enumerate(codes):
                if code is not None and code != 0 and not stopping:
                    log.error("worker exited; restarting", extra={"code": code, "backoff_s": backoff[i]})
                    time.sleep(backoff[i])
                    if stopping:  # told to stop while waiting: a worker started now would never be told
                        continue
                    backoff[i] = min(backoff[i] * 2, _MAX_BACKOFF_S)
                    procs[i] = subprocess.Popen(command, env=env)
            time.sleep(0.2)
