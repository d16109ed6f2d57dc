"""The ASGI proxy with a fake upstream: what it forwards, and the errors it answers itself."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from wharf.gateway import GatewaySettings, Replica
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.proxy import RestProxy
from wharf.gateway.routes import Graph
from wharf.gateway.upstream import Answer, Headers
from wharf.graph import Node, ServiceTarget, Step
from wharf.logger import PayloadLogger

from .tables import revision, service, table

pytestmark = pytest.mark.anyio


class FakeUpstream:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, Headers, bytes]] = []

    async def send(self, replica: Replica, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        self.sent.append((replica.id, method, target, headers, body))
        return Answer(201, [(b"x-replica", replica.id.encode())], b"answer")


async def call(
    app: RestProxy, path: str, headers: Headers, body: bytes = b"", query: bytes = b"", method: str = "POST"
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Status, headers and body of the answer to a request (a body of 4 bytes or more arrives in two parts)."""
    chunks = [body[:3], body[3:]] if len(body) > 3 else [body]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "client": ("10.0.0.9", 5555),
    }
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def proxy(**settings: Any) -> tuple[RestProxy, FakeUpstream]:
    """The proxy in front of service iris: revision iris-1 takes all traffic, tag `prev` names iris-2."""
    config = GatewaySettings(**settings)
    dispatcher = Dispatcher(config, random.Random(0))
    dispatcher.update(table(service(revisions=(revision("iris-1"), revision("iris-2")), tags={"prev": "iris-2"})))
    upstream = FakeUpstream()
    return RestProxy(dispatcher, upstream, config, PayloadLogger()), upstream  # type: ignore[arg-type]


async def test_forwards_method_path_query_body_and_end_to_end_headers() -> None:
    app, upstream = proxy()
    headers = [
        (b"host", b"iris.default.example.com:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"7"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"connection", b"keep-alive, x-hop"),
        (b"x-hop", b"dropped"),
        (b"te", b"trailers"),
        (b"x-request-id", b"abc"),
    ]
    status, answer_headers, body = await call(app, "/v2/models/iris/infer", headers, b'{"a":1}', b"q=1")
    assert (status, body) == (201, b"answer")
    assert answer_headers == {b"x-replica": b"iris-1-r0", b"content-length": b"6"}
    ((replica, method, target, forwarded, sent_body),) = upstream.sent
    assert (replica, method, target, sent_body) == ("iris-1-r0", "POST", "/v2/models/iris/infer?q=1", b'{"a":1}')
    assert forwarded == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"abc"),
        (b"x-forwarded-for", b"1.2.3.4, 10.0.0.9"),
        (b"x-forwarded-host", b"iris.default.example.com:8080"),
    ]


async def test_path_prefix_tag_host_and_pinned_revision() -> None:
    app, upstream = proxy()
    await call(app, "/serving/default/iris/v2/models/iris/infer", [(b"host", b"127.0.0.1")])
    await call(app, "/v2", [(b"host", b"prev-iris.default.example.com")])
    await call(app, "/v2", [(b"host", b"iris.default.example.com"), (b"x-wharf-revision", b"iris-2")])
    assert [(r, t) for r, _, t, _, _ in upstream.sent] == [
        ("iris-1-r0", "/v2/models/iris/infer"),
        ("iris-2-r0", "/v2"),
        ("iris-2-r0", "/v2"),
    ]


async def test_errors_the_gateway_answers_itself() -> None:
    app, upstream = proxy(max_request_bytes=1024)
    status, headers, body = await call(app, "/v2", [(b"host", b"other.default.example.com")])
    assert (status, headers[b"content-type"]) == (404, b"application/json")
    assert "no InferenceService for host 'other.default.example.com'" in orjson.loads(body)["error"]
    status, _, body = await call(app, "/v2", [(b"host", b"iris.default.example.com")], b"x" * 2000)
    assert status == 413 and b"exceeds the limit of 1024" in body
    assert upstream.sent == []


IRIS = b"iris.default.example.com"


async def test_a_disconnect_before_any_body_forwards_nothing() -> None:
    app, upstream = proxy()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2", "query_string": b"", "headers": [(b"host", IRIS)]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 400 and b"disconnected" in sent[1]["body"]
    assert upstream.sent == []


# --- graphs ---------------------------------------------------------------------------------------------------
ONE_STEP = Graph("default", "g", {"root": Node("Sequence", (Step("s", ServiceTarget("iris")),))}, 5.0)


def graph_proxy(graph: Graph, rng: random.Random) -> tuple[RestProxy, FakeUpstream, Dispatcher]:
    """The proxy in front of `graph` and service iris (one revision, iris-1)."""
    config = GatewaySettings()
    dispatcher = Dispatcher(config, rng)
    dispatcher.update(table(service(), graphs=(graph,)))
    upstream = FakeUpstream()
    return RestProxy(dispatcher, upstream, config, PayloadLogger()), upstream, dispatcher  # type: ignore[arg-type]


async def test_a_graph_step_gets_the_request_headers() -> None:
    app, upstream, _ = graph_proxy(ONE_STEP, random.Random(0))
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = [
        (b"host", b"g.default.example.com"),
        (b"content-type", b"text/plain"),
        (b"accept-encoding", b"gzip"),
        (b"traceparent", traceparent),
        (b"x-request-id", b"abc"),
        (b"x-request-id", b"def"),
    ]
    status, answer_headers, body = await call(app, "/", headers, b'{"instances":[1]}')
    assert (status, answer_headers[b"content-type"], body) == (200, b"application/json", b"answer")
    ((replica, method, target, forwarded, sent_body),) = upstream.sent
    assert (replica, method, target, sent_body) == (
        "iris-1-r0",
        "POST",
        "/v1/models/iris:predict",
        b'{"instances":[1]}',
    )
    assert forwarded == [
        (b"content-type", b"application/json"),
        (b"traceparent", traceparent),
        (b"x-request-id", b"abc, def"),
        (b"x-forwarded-for", b"10.0.0.9"),
        (b"x-forwarded-host", b"g.default.example.com"),
    ]


async def test_a_graph_takes_only_a_post() -> None:
    app, upstream, _ = graph_proxy(ONE_STEP, random.Random(0))
    status, headers, body = await call(app, "/", [(b"host", b"g.default.example.com")], method="GET")
    assert (status, headers[b"allow"]) == (405, b"POST") and b"graph 'default/g' takes a POST" in body
    assert upstream.sent == []


async def test_a_graph_request_keeps_the_table_it_started_with() -> None:
    app, upstream, dispatcher = graph_proxy(ONE_STEP, random.Random(0))
    moved = table(service(traffic=(("iris-2", 100),)), graphs=(ONE_STEP,))
    messages = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.request", "body": b"}"}]

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:  # the table changes while the body comes in
            dispatcher.update(moved)
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/serving/default/g", "query_string": b"", "headers": []}
    await app(scope, receive, send)
    await call(app, "/serving/default/g", [], b"{}")  # the next request goes by the new table
    assert [replica for replica, *_ in upstream.sent] == ["iris-1-r0", "iris-2-r0"]


class RecordingRandom(random.Random):
    def __init__(self) -> None:
        super().__init__(0)
        self.stops: list[int] = []

    def randrange(self, stop: int, *args: Any) -> int:  # type: ignore[override]
        self.stops.append(stop)
        return super().randrange(stop, *args)


async def test_a_graph_splitter_draws_from_the_dispatcher_rng() -> None:
    steps = (Step("a", ServiceTarget("iris"), weight=30), Step("b", ServiceTarget("iris"), weight=70))
    rng = RecordingRandom()
    app, upstream, _ = graph_proxy(Graph("default", "g", {"root": Node("Splitter", steps)}, 5.0), rng)
    status, _, _ = await call(app, "/serving/default/g", [], b"{}")
    assert status == 200 and len(upstream.sent) == 1
    assert rng.stops == [100]
