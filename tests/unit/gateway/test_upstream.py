"""The pooled HTTP/1.1 client against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wharf.gateway.dispatch import ConnectFailed, NoAnswer, UpstreamFailed
from wharf.gateway.routes import Replica
from wharf.gateway.upstream import HttpUpstream

pytestmark = pytest.mark.anyio

Script = Callable[[bytes], bytes | None]  # request head and body -> raw answer (None: close without answering)
Serve = Callable[[Script], Awaitable[tuple["ScriptedServer", Replica]]]


class ScriptedServer:
    """Answers each request on a connection with `script(request)`; counts connections and requests."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length")))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.script(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start scripted servers with `await serve(script)`; each is closed when the test ends."""
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> tuple[ScriptedServer, Replica]:
        scripted = ScriptedServer(script)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return scripted, Replica("r", f"http://127.0.0.1:{port}", "", True)

    yield start
    for server in servers:
        server.close()


def upstream(pool_size: int = 4) -> HttpUpstream:
    return HttpUpstream(connect_timeout_s=1.0, pool_size=pool_size, idle_timeout_s=30.0)


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n" % (extra, len(body))
    return head + body


async def test_requests_reuse_one_keep_alive_connection(serve: Serve) -> None:
    server, replica = await serve(lambda request: ok())
    client = upstream()
    for _ in range(3):
        answer = await client.send(replica, "POST", "/v2/models/m/infer?x=1", [(b"x-id", b"7")], b"{}")
        assert (answer.status, answer.body) == (200, b'{"ok":true}')
        assert answer.headers == [(b"content-type", b"application/json")]
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v2/models/m/infer?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-id: 7\r\n" in first and first.endswith(b"content-length: 2\r\n\r\n{}")
    client.close()


async def test_chunked_and_unframed_answers_are_read_whole(serve: Serve) -> None:
    chunked = b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    server, replica = await serve(lambda request: chunked)
    answer = await upstream().send(replica, "GET", "/", [], b"")
    assert (answer.status, answer.body, answer.headers) == (500, b"abcde", [])

    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    server, replica = await serve(lambda request: until_close)
    answer = await upstream().send(replica, "GET", "/", [], b"")
    assert (answer.status, answer.body) == (200, b"all of it")


async def test_head_answers_have_no_body_and_the_connection_is_not_reused(serve: Serve) -> None:
    server, replica = await serve(lambda request: b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
    client = upstream()
    for _ in range(2):
        answer = await asyncio.wait_for(client.send(replica, "HEAD", "/", [], b""), 2)
        assert (answer.status, answer.body) == (200, b"")
    assert server.connections == 2


async def test_closed_pooled_connections_are_replaced(serve: Serve) -> None:
    server, replica = await serve(lambda request: ok(extra=b"connection: close\r\n"))
    client = upstream()
    for _ in range(2):
        assert (await client.send(replica, "GET", "/", [], b"")).status == 200
    assert server.connections == 2


async def test_a_refused_connection_is_connect_failed() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectFailed, match="cannot connect to replica 'gone'"):
        await upstream().send(Replica("gone", f"http://127.0.0.1:{port}", "", True), "GET", "/", [], b"")


async def test_a_connection_dropped_before_the_answer_is_upstream_failed(serve: Serve) -> None:
    server, replica = await serve(lambda request: None)
    with pytest.raises(UpstreamFailed, match="closed the connection before answering"):
        await asyncio.wait_for(upstream().send(replica, "POST", "/", [], b"x"), 2)
    with pytest.raises(NoAnswer):  # the dispatcher may send it again
        await asyncio.wait_for(upstream().send(replica, "POST", "/", [], b"x"), 2)
    server, replica = await serve(lambda request: b"NOT HTTP AT ALL\r\n\r\n")
    with pytest.raises(UpstreamFailed, match="malformed") as raised:
        await asyncio.wait_for(upstream().send(replica, "POST", "/", [], b"x"), 2)
    assert not isinstance(raised.value, NoAnswer)



async def test_idle_connections_beyond_the_pool_size_are_closed(serve: Serve) -> None:
    release = asyncio.Event()

    async def slow_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.write(ok())
        await writer.drain()
        await reader.read()  # until the client closes
        closed.append(True)

    closed: list[bool] = []
    server = await asyncio.start_server(slow_handle, "127.0.0.1", 0)
    replica = Replica("r", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", "", True)
    client = upstream(pool_size=1)
    sends = [asyncio.create_task(client.send(replica, "GET", "/", [], b"")) for _ in range(3)]
    await asyncio.sleep(0.1)
    release.set()
    assert [a.status for a in await asyncio.gather(*sends)] == [200, 200, 200]
    await asyncio.sleep(0.1)
    assert len(closed) == 2  # one stays in the pool
    client.close()
    server.close()


def test_replica_urls_must_be_plain_http() -> None:
    with pytest.raises(ValueError, match="not http://host:port"):
        asyncio.run(upstream().send(Replica("r", "https://x:1", "", True), "GET", "/", [], b""))


async def test_errors_name_the_peer_by_its_role(serve: Serve) -> None:
    """A payload log sink's failures say so, not "replica"."""
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    sink = Replica(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", "", True, role="payload log sink")
    with pytest.raises(ConnectFailed, match=f"cannot connect to payload log sink '127.0.0.1:{port}'"):
        await upstream().send(sink, "POST", "/", [], b"")
    _, replica = await serve(lambda request: None)
    dropping = Replica(replica.id, replica.http_url, "", True, role="payload log sink")
    with pytest.raises(UpstreamFailed, match="^payload log sink closed the connection before answering"):
        await asyncio.wait_for(upstream().send(dropping, "POST", "/", [], b"x"), 2)
