"""What processes use, read from Linux's /proc: CPU seconds and resident memory, of one process or of whole sessions.

A process's CPU seconds are its user and system time plus those of the children it has waited for (`utime`,
`stime`, `cutime`, `cstime` of /proc/PID/stat), so the work of a worker process that has ended stays counted; its
resident memory is its resident set (`rss` of the same file, in pages), pages it shares with other processes (a
parent it was forked from) included, as `ps` and `top` show it.

A session's figures are the sums over its live processes: a process that leads its own session (as every Wharf
replica does) with the worker processes it starts. `session_usage` costs one pass over /proc: a read of
/proc/PID/stat for every process on the machine (about 20 µs each), whatever the number of sessions asked for.
Elsewhere than Linux nothing is found (empty answers, None).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

_PROC = "/proc"
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# Fields of /proc/PID/stat after the command's closing parenthesis (the 3rd field of the line is the first here).
_SESSION, _UTIME, _STIME, _CUTIME, _CSTIME, _RSS = 3, 11, 12, 13, 14, 21


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds used so far (user + system, waited-for children included) and resident bytes now, of one
    process or summed over the `processes` of a session."""

    cpu_seconds: float
    resident_bytes: int
    processes: int = 1


def process_usage(pid: int) -> ProcessUsage | None:
    """What process `pid` uses (None when it is gone or unreadable)."""
    fields = _stat(pid)
    return None if fields is None else _usage(fields)


def session_usage(leaders: Iterable[int]) -> dict[int, ProcessUsage]:
    """For each session led by one of `leaders` that has a live process: the sum of what its processes use."""
    wanted = set(leaders)
    sums: dict[int, ProcessUsage] = {}
    if not wanted:
        return sums
    try:
        entries = os.scandir(_PROC)
    except OSError:
        return sums
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            fields = _stat(int(entry.name))
            if fields is None or (session := int(fields[_SESSION])) not in wanted:
                continue
            usage, before = _usage(fields), sums.get(session)
            if before is not None:
                usage = ProcessUsage(
                    before.cpu_seconds + usage.cpu_seconds,
                    before.resident_bytes + usage.resident_bytes,
                    before.processes + 1,
                )
            sums[session] = usage
    return sums


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command (which may hold spaces and parentheses)."""
    with suppress(OSError), open(f"{_PROC}/{pid}/stat", "rb") as stat:
        return stat.read().rpartition(b")")[2].split()
    return None


def _usage(fields: list[bytes]) -> ProcessUsage:
    ticks = sum(int(fields[i]) for i in (_UTIME, _STIME, _CUTIME, _CSTIME))
    return ProcessUsage(ticks * _TICK_S, int(fields[_RSS]) * _PAGE)
