"""Standby replicas' handover and clean-up, with real processes standing in for standbys (`sh` that logs
`standing by` and sleeps): one cancelled or dead during the handover is stopped and not returned, the pids an
earlier daemon recorded are killed only when they are replica processes, and both sides of the handover agree."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wharf.control.backends import standby as control
from wharf.control.backends.logfile import LogFollower
from wharf.control.backends.process import ReplicaProcess
from wharf.control.backends.replica import ReplicaSpec
from wharf.control.backends.standby import Standbys, _Standby
from wharf.control.backends.template import ReplicaTemplate
from wharf.server import standby as server
from wharf.telemetry.logs import JsonFormatter

pytestmark = pytest.mark.timeout(30)

SPEC = ReplicaSpec("echo-1", "echo", "wharf_test_models:Echo")
STANDING_BY = """echo '{"event":"standing by"}'"""
Start = Callable[[str, Path], ReplicaProcess]


@pytest.fixture
def standbys(tmp_path: Path) -> Standbys:
    template = ReplicaTemplate((), tmp_path / "template.log", 30.0, 60.0)  # never started here
    return Standbys(template, tmp_path, max_count=2, min_available=0, start_timeout_s=20.0)


@pytest.fixture
def processes() -> Iterator[Start]:
    """Start `sh -c SCRIPT` as a replica process logging to a file; each is killed at the end."""
    started: list[ReplicaProcess] = []

    def start(script: str, log_path: Path) -> ReplicaProcess:
        process = ReplicaProcess.spawn(["sh", "-c", script], os.environ, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.signal(signal.SIGKILL)


async def _until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _standing_by(standbys: Standbys, start: Start, script: str) -> _Standby:
    """A standby of SPEC running `script` (which logs `standing by` first), kept by `standbys` once it is ready."""
    log_path = standbys.home / "logs" / "standby.log"
    handover = standbys.home / "standby" / f"{SPEC.revision}.json"
    handover.parent.mkdir(parents=True)
    standby = _Standby(SPEC, start(script, log_path), log_path, handover, LogFollower(log_path, 0))
    standby.record.write_text(str(standby.process.pid))
    standbys._standbys[SPEC.revision] = standby
    await _until(standby.ready)
    return standby


@pytest.mark.anyio
async def test_a_standby_whose_replica_is_cancelled_during_the_handover_is_stopped(
    standbys: Standbys, processes: Start
) -> None:
    standby = await _standing_by(standbys, processes, f"trap '' USR1; {STANDING_BY}; exec sleep 60")
    taking = asyncio.create_task(standbys.take(SPEC, {}, standbys.home / "replica.log"))
    await _until(lambda: standby.handover.exists())  # handed over: waiting for its `serving` line
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    await _until(standby.process.exited)
    await standbys.close()
    assert not standby.record.exists() and not standby.handover.exists()


@pytest.mark.anyio
async def test_a_standby_that_dies_during_the_handover_is_not_the_replica(standbys: Standbys, processes: Start) -> None:
    standby = await _standing_by(standbys, processes, f"{STANDING_BY}; exec sleep 60")  # SIGUSR1 ends it
    assert await standbys.take(SPEC, {}, standbys.home / "replica.log") is None
    assert standby.process.exited()
    await standbys.close()
    assert not standby.record.exists() and standbys._standbys == {}


def test_an_earlier_daemons_standbys_are_killed_and_other_recorded_pids_left_alone(tmp_path: Path) -> None:
    # what is_replica_process recognizes: a session leader forked from the template (its command line)
    forked = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "wharf.control.backends.zygote"]
    other = ["sleep", "60"]
    records = tmp_path / "standby"
    records.mkdir()
    started = [subprocess.Popen(command, start_new_session=True) for command in (forked, other)]
    try:
        for name, popen in zip(("a-1", "b-1"), started, strict=True):
            (records / f"{name}.pid").write_text(str(popen.pid))
            (records / f"{name}.json").write_text("{}")
        (records / "c-1.pid").write_text("not a pid")
        Standbys(ReplicaTemplate((), tmp_path / "t.log", 30.0, 60.0), tmp_path, 2, 0, 20.0)
        assert started[0].wait(10) == -signal.SIGKILL
        assert started[1].poll() is None
        assert list(records.iterdir()) == []
    finally:
        for popen in started:
            popen.kill()
            popen.wait(10)


def test_the_control_plane_and_the_server_agree_on_the_handover() -> None:
    """The control plane does not import the server, so it names the handover's variable and event itself."""
    assert control.STANDBY_ENV == server.STANDBY_ENV
    record = logging.LogRecord(server.log.name, logging.INFO, __file__, 0, server.STANDING_BY, None, None)
    assert control._STANDING_BY in JsonFormatter().format(record).encode()
