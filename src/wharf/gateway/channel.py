"""The channel between `wharf up` and its gateway process: messages over a Unix socket, one connection at a time.

Each message is pickled behind a 4-byte length. Pickle is safe here only because both ends are the same user's
processes: the socket lives in a directory only that user may enter, and each end checks the other's user id
(`SO_PEERCRED`) before reading a byte. Messages are small (a route table, a statistics snapshot) and rare (a table
on every change, statistics every `PUSH_S`), so this costs nothing on the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import socket
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.gateway.bandits import ArmTable, BanditReport
from wharf.gateway.edges import EdgeStats
from wharf.gateway.routes import RouteTable
from wharf.gateway.stats import RevisionStats

PUSH_S = 0.25  # how often the gateway sends its statistics
_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 256 * 2**20
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


@dataclass(frozen=True, slots=True)
class Hello:
    """The gateway's first message on a new connection: where it listens."""

    pid: int
    host: str
    http_port: int
    grpc_port: int


@dataclass(frozen=True, slots=True)
class Table:
    """Route by this table from now on."""

    table: RouteTable


@dataclass(frozen=True, slots=True)
class Load:
    """The gateway's statistics per revision, what its payload logger did so far, and who called whom.

    A gateway of an earlier release sends no `edges`: unpickled here, the field is not set at all (read it with
    `getattr(load, "edges", ())`); a daemon of an earlier release ignores it. The same goes for `bandit`, its
    bandits' counts (None while it has none)."""

    stats: dict[str, RevisionStats]
    payload_counts: dict[str, int] = field(default_factory=dict)
    edges: tuple[EdgeStats, ...] = ()
    bandit: BanditReport | None = None


@dataclass(frozen=True, slots=True)
class Arms:
    """The daemon's answer to a `Load` with a bandit report: every gateway's counts per bandit and arm (`totals`),
    and those of the receiving gateway's that they include (`applied`)."""

    totals: ArmTable
    applied: ArmTable


@dataclass(frozen=True, slots=True)
class Demand:
    """Requests started waiting for this revision, which has no ready replica."""

    revision: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop listening, let requests in flight finish for up to `grace_s`, and exit."""

    grace_s: float


Message = Hello | Table | Load | Arms | Demand | Stop


def socket_path(home: Path) -> Path:
    """Where the gateway of WHARF_HOME `home` listens for its daemon: in `home`, or, where that path is too long
    for a socket address, in a directory of this user's under the system's temporary directory."""
    path = home.resolve() / "gateway.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    private = Path(tempfile.gettempdir()) / f"wharf-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise PermissionError(f"{private} must be a directory of this user's that nobody else may enter")
    return private / f"{hashlib.sha256(os.fsencode(path)).hexdigest()[:24]}.sock"


def check_peer(writer: asyncio.StreamWriter) -> None:
    """Refuse a peer that runs as another user (where the system tells: Linux's SO_PEERCRED)."""
    sock: socket.socket | None = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        raise PermissionError(f"the gateway channel's peer runs as user {uid}, not as this user")


def send(writer: asyncio.StreamWriter, message: Message) -> None:
    """Queue `message` on the connection (the transport buffers it; nothing waits)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_HEADER.pack(len(data)) + data)


async def receive(reader: asyncio.StreamReader) -> Any:
    """The next message; `asyncio.IncompleteReadError` once the peer has gone."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > _MAX_MESSAGE:
        raise ConnectionError(f"a gateway channel message of {size} bytes is over the limit")
    return pickle.loads(await reader.readexactly(size))
