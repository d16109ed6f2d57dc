"""uvicorn embedded in a process that owns its event loop and its signals (model server, gateway, daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling of its own: the embedding process decides when to stop (`should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def start(self, listener: socket.socket) -> asyncio.Task[None]:
        """Serve on `listener` in a task; return it once the server accepts connections."""
        task = asyncio.create_task(self.serve(sockets=[listener]))
        while not self.started:
            if task.done():
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        return task


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on `host:port` (0: any free port), shared between processes with `reuse_port`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock
