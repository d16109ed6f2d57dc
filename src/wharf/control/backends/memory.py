"""How much memory replicas hold, read from /proc: what the local backend's watchdog compares with their memory
limits where no cgroup enforces them, and what a standby costs and whether the machine has room for one.

A replica is its whole session (it leads one; its worker processes join it). What it holds is its processes'
private memory (smaps_rollup's Private_Clean + Private_Dirty): pages a replica forked from the template still
shares with the template are the template's, as a cgroup would charge them. Cost of one `over_limit` call: a read
of /proc/PID/stat for every process on the machine (about 20 µs each), and a read of smaps_rollup (a walk of the
page tables, about 0.1 ms for a model server) only for the processes of sessions whose resident memory, which is
never less than their private memory, is over the limit. Linux only: elsewhere nothing is ever over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import suppress

_PROC = "/proc"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PRIVATE = (b"Private_Clean:", b"Private_Dirty:")


def over_limit(limits: Mapping[int, int]) -> dict[int, int]:
    """The sessions (by the pid of their leader, a key of `limits`) whose processes hold more private memory than
    their limit (bytes), with what they hold."""
    sessions = _sessions(limits.keys())
    over = {}
    for leader, (resident, pids) in sessions.items():
        if resident > limits[leader] and (held := sum(map(private_bytes, pids))) > limits[leader]:
            over[leader] = held
    return over


def private_bytes(pid: int) -> int:
    """The memory only process `pid` maps (0 when it is gone or unreadable)."""
    try:
        with open(f"{_PROC}/{pid}/smaps_rollup", "rb") as rollup:
            lines = rollup.read().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(_PRIVATE)) * 1024


def resident_bytes(pid: int) -> int:
    """Process `pid`'s resident memory, shared pages included (0 when it is gone or unreadable)."""
    try:
        with open(f"{_PROC}/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def available_bytes() -> int:
    """The machine's MemAvailable; where /proc has none, as if unlimited."""
    try:
        with open(f"{_PROC}/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _sessions(leaders: Iterable[int]) -> dict[int, tuple[int, list[int]]]:
    """For each session led by one of `leaders`: the resident bytes of its processes, and their pids."""
    found: dict[int, tuple[int, list[int]]] = {leader: (0, []) for leader in leaders}
    try:
        entries = os.scandir(_PROC)
    except OSError:
        return {}
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            with suppress(OSError), open(f"{_PROC}/{entry.name}/stat", "rb") as stat:
                # pid (comm) state ppid pgrp session ... rss: after the command's closing parenthesis, the session is
                # the 4th field and the resident pages the 22nd
                fields = stat.read().rpartition(b")")[2].split()
                session = int(fields[3])
                if session in found:
                    resident, pids = found[session]
                    found[session] = (resident + int(fields[21]) * _PAGE, [*pids, int(entry.name)])
    return found
