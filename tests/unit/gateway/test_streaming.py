"""Event streams through the gateway: a real uvicorn replica answering server-sent events, the real gateway on
127.0.0.1, and an httpx client. Each event reaches the client before the replica makes the next; a long stream
counts in flight until its end; a client that goes away closes the replica's connection; a slow client holds
the replica back; a stream that breaks off is never sent again."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.event_sink import EventSink
from tests.otlp_receiver import OtlpReceiver
from wharf.embedded_http import EmbeddedServer, listen
from wharf.gateway import Gateway, GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.logger import RESPONSE_TYPE, LogTarget

pytest_plugins = ["tests.otlp_fixtures"]
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
HOST = "chat.default.example.com"
REVISION = "chat-predictor-00001"
WAIT_S = 10.0


class EventReplica:
    """An ASGI replica: `/events` answers the events the test puts in `events` (None ends the stream), `/flood`
    `FLOOD` bytes as fast as the client takes them, `/cut` one event then drops the connection, anything else
    a JSON body. It notes the client going away."""

    FLOOD = 48 * 2**20

    def __init__(self) -> None:
        self.events: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.requests = 0
        self.gone = asyncio.Event()
        self.flooded = 0  # bytes of /flood the server took

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        while (await receive()).get("more_body"):
            pass
        path = scope["path"]
        if path not in ("/events", "/flood", "/cut", "/openai/v1/chat/completions"):
            body = b'{"whole":true}'
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            if path == "/flood":
                chunk = b"x" * 2**18
                while self.flooded < self.FLOOD and not self.gone.is_set():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    self.flooded += len(chunk)
            elif path == "/cut":
                await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
                raise RuntimeError("the replica dies mid-stream")  # uvicorn closes the connection
            else:
                while (event := await self.events.get()) is not None:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()

    async def _watch(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone.set()


class Setup:
    def __init__(self, replica: EventReplica, gateway: Gateway, client: httpx.AsyncClient, service: Service) -> None:
        self.replica, self.gateway, self.client, self.service = replica, gateway, client, service

    def in_flight(self) -> int:
        return self.gateway.stats()[REVISION].in_flight


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    replica = EventReplica()
    sock = listen("127.0.0.1", 0)
    server = EmbeddedServer(replica, log_level="critical")
    task = await server.start(sock)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    gateway = Gateway(GatewaySettings())
    revision = Revision(REVISION, (Replica("chat-0", url, "", True),), 30.0)
    service = Service("default", "chat", "chat", ((REVISION, 100),), {}, {REVISION: revision})
    gateway.update(RouteTable((service,)))
    port, _ = await gateway.start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"host": HOST}, timeout=WAIT_S)
    try:
        yield Setup(replica, gateway, client, service)
    finally:
        await client.aclose()
        await gateway.stop(1)
        replica.events.put_nowait(None)  # a stream still open ends
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


async def _until(condition: Any, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


async def test_each_event_reaches_the_client_before_the_replica_makes_the_next(setup: Setup) -> None:
    events = [b'data: {"n": %d}\n\n' % n for n in range(5)]
    async with setup.client.stream("POST", "/events", content=b"{}") as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in answer.headers
        received = answer.aiter_raw()
        for event in events:
            await setup.replica.events.put(event)
            async with asyncio.timeout(WAIT_S):
                assert await anext(received) == event  # this one came alone, before the next was made
            assert setup.in_flight() == 1  # in flight until its end: what autoscaling counts
        await setup.replica.events.put(None)
        assert [chunk async for chunk in received] == []
    await _until(lambda: setup.in_flight() == 0, "the stream to leave the count")
    stats = setup.gateway.stats()[REVISION]
    assert stats.answered == 1


async def test_a_whole_answer_and_then_a_stream_share_one_kept_alive_connection(setup: Setup) -> None:
    whole = await setup.client.post("/v2/models/chat/infer", content=b"{}")
    assert whole.json() == {"whole": True} and whole.headers["content-length"] == "14"
    await setup.replica.events.put(b"data: [DONE]\n\n")
    await setup.replica.events.put(None)
    streamed = await setup.client.post("/events", content=b"{}")
    assert streamed.content == b"data: [DONE]\n\n"
    again = await setup.client.post("/v2/models/chat/infer", content=b"{}")
    assert again.status_code == 200
    assert setup.replica.requests == 3


async def test_a_client_that_goes_away_closes_the_replicas_connection(setup: Setup) -> None:
    async with setup.client.stream("POST", "/events", content=b"{}") as answer:
        await setup.replica.events.put(b"data: 1\n\n")
        async with asyncio.timeout(WAIT_S):
            assert await anext(answer.aiter_raw()) == b"data: 1\n\n"
    # Leaving the block unread closes the client's connection; the replica sees its own close at once.
    async with asyncio.timeout(WAIT_S):
        await setup.replica.gone.wait()
    await _until(lambda: setup.in_flight() == 0, "the stream to leave the count")


async def test_a_slow_client_holds_the_replica_back(setup: Setup) -> None:
    async with setup.client.stream("POST", "/flood", content=b"{}") as answer:
        stalled = -1
        async with asyncio.timeout(WAIT_S):
            while stalled != setup.replica.flooded:  # until the replica's sending stops moving
                stalled = setup.replica.flooded
                await asyncio.sleep(0.3)
        assert 0 < stalled < EventReplica.FLOOD // 2  # buffers on the way, not the whole answer in the gateway
        size = 0
        async for chunk in answer.aiter_raw():
            size += len(chunk)
    assert size == EventReplica.FLOOD


async def test_a_stream_that_breaks_off_is_cut_for_the_client_and_never_sent_again(setup: Setup) -> None:
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # no chunked terminator: the client knows it is incomplete
        async with setup.client.stream("POST", "/cut", content=b"{}") as answer:
            async for chunk in answer.aiter_raw():
                received += chunk
    assert received == b"data: 1\n\n"
    assert setup.replica.requests == 1
    await _until(lambda: setup.in_flight() == 0, "the stream to leave the count")
    with contextlib.suppress(Exception):
        await setup.client.post("/v2/models/chat/infer", content=b"{}")


async def test_a_logged_stream_goes_on_as_it_comes_and_is_logged_whole_once_it_ended(setup: Setup) -> None:
    sink = EventSink()
    try:
        target = LogTarget(sink.url, "all", "chat", "default", "predictor", REVISION, f"http://{HOST}")
        revision = dataclasses.replace(setup.service.revisions[REVISION], logger=target)
        logged = dataclasses.replace(setup.service, revisions={REVISION: revision})
        setup.gateway.update(RouteTable((logged,)))
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "chat"}
        pieces = [{"content": "Paris"}, {"content": " it is."}]
        async with setup.client.stream("POST", "/openai/v1/chat/completions", content=b'{"stream":true}') as answer:
            received = answer.aiter_raw()
            for delta in pieces:
                event = b"data: " + orjson.dumps(chunk | {"choices": [{"index": 0, "delta": delta}]}) + b"\n\n"
                await setup.replica.events.put(event)
                async with asyncio.timeout(WAIT_S):
                    assert await anext(received) == event  # not held back for the log
            end = chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await setup.replica.events.put(b"data: " + orjson.dumps(end) + b"\n\ndata: [DONE]\n\n")
            await setup.replica.events.put(None)
            assert b"[DONE]" in b"".join([chunk async for chunk in received])
            request_id = answer.headers["x-request-id"]
        request, response = sorted(await asyncio.to_thread(sink.wait_for, 2), key=lambda e: e["type"])
        assert request["id"] == response["id"] == request_id and response["type"] == RESPONSE_TYPE
        assert request.data == b'{"stream":true}' and response["datacontenttype"] == "application/json"
        (choice,) = orjson.loads(response.data)["choices"]
        assert choice["message"]["content"] == "Paris it is." and choice["finish_reason"] == "stop"
    finally:
        sink.close()


async def test_a_stream_waits_in_the_activator_while_its_revision_scales_from_zero(setup: Setup) -> None:
    cold = dataclasses.replace(setup.service.revisions[REVISION], replicas=())
    setup.gateway.update(RouteTable((dataclasses.replace(setup.service, revisions={REVISION: cold}),)))
    answer = asyncio.ensure_future(setup.client.post("/openai/v1/chat/completions", content=b'{"stream":true}'))
    await _until(lambda: setup.gateway.stats()[REVISION].queued == 1, "the request to wait in the activator")
    await setup.replica.events.put(b"data: [DONE]\n\n")
    await setup.replica.events.put(None)
    setup.gateway.update(RouteTable((setup.service,)))  # a replica is ready
    async with asyncio.timeout(WAIT_S):
        assert (await answer).content == b"data: [DONE]\n\n"


async def test_the_requests_span_lasts_until_the_stream_ends(setup: Setup, traced: OtlpReceiver) -> None:
    async with setup.client.stream("POST", "/openai/v1/chat/completions", content=b"{}") as answer:
        await setup.replica.events.put(b"data: 1\n\n")
        received = answer.aiter_raw()
        async with asyncio.timeout(WAIT_S):
            assert await anext(received) == b"data: 1\n\n"
        await asyncio.sleep(0.3)  # the stream goes on
        await setup.replica.events.put(None)
        assert [chunk async for chunk in received] == []
        ended_ns = time.time_ns()
    spans = await asyncio.to_thread(traced.wait_for, lambda spans: any(s.name.startswith("POST") for s in spans))
    (span,) = [s for s in spans if s.name == "POST /openai/v1/chat/completions"]
    assert span.attributes["http.response.status_code"] == 200 and span.attributes["wharf.revision"] == REVISION
    assert span.end_ns - span.start_ns >= 300_000_000 and span.end_ns <= ended_ns + 1_000_000_000
