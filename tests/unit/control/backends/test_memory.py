"""The memory of a session's processes, as the watchdog reads it from /proc (this test's own session)."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest

from wharf.control.backends.memory import available_bytes, over_limit, private_bytes, resident_bytes

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux's /proc")

MIB = 1 << 20


def test_a_session_is_over_its_limit_by_the_private_memory_of_all_its_processes() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; held = bytearray(64 << 20); sys.stdout.write('ok\\n'); sys.stdout.flush()"
         "; sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ok\n"
        held = private_bytes(holder.pid)
        assert 64 * MIB < held < 128 * MIB
        over = over_limit({holder.pid: 32 * MIB, os.getsid(0): 1 << 40})
        assert list(over) == [holder.pid] and over[holder.pid] >= held
        assert over_limit({holder.pid: 256 * MIB}) == {}
    finally:
        holder.kill()
        holder.wait()
    assert over_limit({holder.pid: 0}) == {} and private_bytes(holder.pid) == 0  # gone


def test_resident_bytes_count_what_a_process_touched_and_zero_for_one_gone() -> None:
    # Fresh anonymous pages, each written: a heap allocation may reuse pages already resident (freed by earlier
    # tests in this worker), and a zeroed one may leave them unmapped; either keeps the resident size unchanged.
    with mmap.mmap(-1, 64 * MIB) as block:
        before = resident_bytes(os.getpid())
        for offset in range(0, 64 * MIB, mmap.PAGESIZE):
            block[offset] = 1
        assert resident_bytes(os.getpid()) >= before + 48 * MIB
    assert resident_bytes(2**22 + 1) == 0  # above the kernel's pid_max: never a process
    assert 0 < available_bytes() < 1 << 62
