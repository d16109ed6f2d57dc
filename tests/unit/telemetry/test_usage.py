"""CPU seconds and resident memory read from /proc: this test process's own, and a session of two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from wharf.telemetry.usage import process_usage, session_usage

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads Linux's /proc")
MIB = 2**20


_HOLDER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
end = time.process_time() + 0.2
while time.process_time() < end:
    pass
held = b"x" * (64 * 2**20)  # written, so resident
print("holding", flush=True)
sys.stdin.readline()
"""


def test_a_process_cpu_seconds_grow_with_its_work_and_its_memory_with_what_it_holds() -> None:
    """Measured in a fresh child: a long-lived test worker may reuse memory it freed, so its resident size need not
    grow with a new allocation."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        before = process_usage(child.pid)
        assert before is not None and before.resident_bytes > 0
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "holding"
        after = process_usage(child.pid)
        assert after is not None
        assert after.cpu_seconds - before.cpu_seconds >= 0.15  # the clock ticks are 10 ms
        assert after.resident_bytes - before.resident_bytes >= 60 * MIB
        assert after.processes == 1
    finally:
        child.kill()
        child.wait(10)


def test_a_process_that_is_gone_uses_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    assert process_usage(child.pid) is None
    assert session_usage([child.pid]) == {}
    assert session_usage([]) == {}


def test_a_session_sums_its_live_processes() -> None:
    # A session leader that starts a worker holding 48 MiB, then burns CPU itself; both sleep until killed.
    script = (
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; m = b\"x\" * (48 << 20); time.sleep(60)'])\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert leader.stdout is not None and leader.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 10
        while (found := session_usage([leader.pid, os.getsid(0)]).get(leader.pid)) is None or (
            found.resident_bytes < 48 * MIB
        ):
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        assert found.processes == 2
        assert found.cpu_seconds >= 0.25
        alone = process_usage(leader.pid)
        assert alone is not None and alone.resident_bytes < found.resident_bytes
    finally:
        os.killpg(leader.pid, 9)
        leader.wait(10)
