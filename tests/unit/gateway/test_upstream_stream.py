"""Streaming a request body to a replica: its framing, an answer that comes before the body ends, and waiting for
a replica that reads slowly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wharf.gateway.routes import Replica
from wharf.gateway.upstream import HttpUpstream

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def parts(*chunks: bytes, pause_s: float = 0.0) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(pause_s)
        yield chunk


class RawReplica:
    """Reads each request's head, then what `read_body` takes of the rest, then answers OK."""

    def __init__(self, read_body: str) -> None:
        self.read_body = read_body  # "length", "chunked" or "none" (answers at once)
        self.bodies: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if self.read_body == "length":
                    length = int(next(h[15:] for h in head.split(b"\r\n") if h.startswith(b"content-length:")))
                    self.bodies.append(await reader.readexactly(length))
                elif self.read_body == "chunked":
                    assert b"transfer-encoding: chunked" in head
                    body = b""
                    while (size := int((await reader.readuntil(b"\r\n"))[:-2], 16)) > 0:
                        body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readexactly(2)
                    self.bodies.append(body)
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def start(replica: RawReplica) -> tuple[asyncio.Server, Replica]:
    server = await asyncio.start_server(replica.handle, "127.0.0.1", 0)
    return server, Replica("r", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", "", True)


def upstream() -> HttpUpstream:
    return HttpUpstream(connect_timeout_s=1.0, pool_size=4, idle_timeout_s=30.0)


@pytest.mark.parametrize(("framing", "length"), [("length", 9), ("chunked", None)])
async def test_a_body_is_sent_as_it_comes_then_the_connection_is_reused(framing: str, length: int | None) -> None:
    raw = RawReplica(framing)
    server, replica = await start(raw)
    client = upstream()
    try:
        for _ in range(2):
            body = parts(b"abc", b"def", b"ghi", pause_s=0.01)
            answer = await client.stream(replica, "POST", "/v2", [], body, length)
            assert (answer.status, answer.body) == (200, b"ok")
        assert raw.bodies == [b"abcdefghi", b"abcdefghi"] and raw.connections == 1
    finally:
        client.close()
        server.close()


async def test_an_answer_before_the_body_ends_stops_the_sending() -> None:
    raw = RawReplica("none")
    server, replica = await start(raw)
    client = upstream()
    sent: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(50):
            await asyncio.sleep(0.01)
            sent.append(b"x")
            yield b"x" * 1000

    try:
        answer = await client.stream(replica, "POST", "/v2", [], body(), 50_000)
        assert (answer.status, answer.body) == (200, b"ok")
        assert len(sent) < 50
        answer = await client.stream(replica, "POST", "/v2", [], parts(b"y"), 1)
        assert raw.connections == 2  # the first connection carried half a request: not reused
    finally:
        client.close()
        server.close()


async def test_writing_waits_for_a_replica_that_reads_slowly() -> None:
    release = asyncio.Event()
    received: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(h[15:] for h in head.split(b"\r\n") if h.startswith(b"content-length:")))
        await release.wait()
        received.append(len(await reader.readexactly(length)))
        writer.write(OK)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    replica = Replica("r", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", "", True)
    client = upstream()
    taken = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal taken
        for _ in range(256):
            taken += 1
            yield b"x" * 2**16

    try:
        sending = asyncio.create_task(client.stream(replica, "POST", "/v2", [], body(), 256 * 2**16))
        await asyncio.sleep(0.5)
        assert taken < 256  # 16 MiB not taken from the client while the replica reads nothing
        release.set()
        answer = await asyncio.wait_for(sending, 10)
        assert answer.status == 200 and received == [256 * 2**16]
    finally:
        client.close()
        server.close()
