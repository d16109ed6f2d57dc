"""A standby model server: a `wharf serve` that loads its models and then waits, without listening, until it is
handed over as a replica; the local backend keeps one per revision scaled to zero (control/backends/standby.py),
so that scaling it back up costs no start-up, import or model load.

The backend starts it with `WHARF_STANDBY` naming a handover file. Once its models are loaded it logs `standing
by` (its handler for SIGUSR1 is installed by then). To hand it over, the backend writes the replica's log file and
environment to the handover file as JSON, `{"log": PATH, "env": {...}}`, and sends SIGUSR1: the server takes that
environment (the replica's id among it) and log, then listens and logs `serving` there as any replica does.
Nothing here runs per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import orjson

from wharf.server.settings import ServerSettings

STANDBY_ENV = "WHARF_STANDBY"  # the handover file of a server started as a standby
STANDING_BY = "standing by"  # the event it logs once it may be handed over

log = logging.getLogger("wharf.server")


async def wait_for_handover(path: Path, settings: ServerSettings) -> None:
    """Log `standing by`, wait for SIGUSR1, then become the replica the handover file describes."""
    loop = asyncio.get_running_loop()
    handed_over = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, handed_over.set)
    log.info(STANDING_BY, extra={"pid": os.getpid()})
    await handed_over.wait()
    loop.remove_signal_handler(signal.SIGUSR1)
    handover = orjson.loads(path.read_bytes())
    env: dict[str, str] = handover["env"]
    os.environ.clear()
    os.environ.update(env)
    settings.replica = env.get("WHARF_REPLICA", "")
    sys.stdout.flush()
    sys.stderr.flush()
    log_fd = os.open(handover["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    log.info("handed over", extra={"replica": settings.replica})
