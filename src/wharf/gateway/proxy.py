"""REST proxy: a bare ASGI application that routes each request and forwards it to a replica.

A body that came whole with its headers (a small one) is forwarded whole, over pooled keep-alive connections
(upstream.py). A larger one still arriving is forwarded as it comes when it may be: it is longer than
`stream_request_bytes` (declared, or, chunked, once that much came), no payload logger or shadow needs the whole of
it, and the revision has a ready replica (a body waiting in the activator is read whole first); otherwise it is
read whole, then forwarded.
Either way at most `max_request_bytes`, and the client may keep the gateway waiting for it `body_timeout_s` in all.
An answer of server-sent events (a generative model's stream) is passed on as it comes (streaming.py), and payload
logging hands the logger its whole body once it ended; other answers are read whole.
Hop-by-hop headers are dropped both ways, and a request's `x-wharf-caller` (it only counts the request on its
caller's edge: edges.py); `x-forwarded-for` and `x-forwarded-host` are set. Replica answers,
errors included, pass through unchanged; the gateway's own errors are `{"error": ...}` bodies, made here and
nowhere else (with a `Retry-After` header when the activator gave up waiting).

The model repository API (`/v2/repository/...`: load, unload, index) is a control operation: it is refused (403)
whatever the route, so that no client of the gateway can unload a service's model in its replicas.

`GET /metrics` with a Host that names no service is answered by the gateway itself: its own metrics (metrics.py).

Bandits (bandits.py, feedback.py): a request to a graph with a Bandit node, or to a service whose rollout is a
bandit, gets a request id when it has none (`x-request-id`), and its answer carries that id and `x-wharf-arm`, the
arms it went to (a graph's steps, comma-separated when it passed several Bandit nodes; a service's revision). A POST
to such a graph's or service's `/feedback` (by host, or after `/serving/{namespace}/{name}`) rewards them; for any
other request this costs one attribute check (the service's `bandit`, the graph's runner's bandits).

While tracing is on (`wharf.telemetry.tracing`), each request is a SERVER span `{METHOD} {path}` continuing the
client's trace (attributes `http.request.method`, `url.path`, `http.response.status_code`, and once routed
`wharf.service`, `wharf.revision`, `wharf.route`: the path forwarded; or `wharf.graph`), and what goes to a replica,
a graph step's service or a payload log sink carries the current span's `traceparent` instead of the client's, so
that the replica's spans are its children (dispatch.py adds the activator wait, retries and the shadow copy). Off,
a request pays a check of `tracing.enabled` where it starts, once routed, and per send.
"""

from __future__ import annotations

import logging
import posixpath
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple
from urllib.parse import unquote

import orjson

from wharf.bandit.policies import ThompsonSampling
from wharf.embedded_http import BodyStream, read_body, start_body
from wharf.errors import (
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unimplemented,
    WharfError,
)
from wharf.gateway.activator import ActivationFailed
from wharf.gateway.api_keys import presented_key, require_key
from wharf.gateway.bandits import ARM, BanditLedger, GraphBandits, has_bandit, service_bandit
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.edges import CALLER_HEADER
from wharf.gateway.metrics import GatewayMetrics
from wharf.gateway.model_routing import model_of_path
from wharf.gateway.feedback import Feedback, RecentRequests, parse_feedback
from wharf.gateway.payloads import REQUEST_ID, REQUEST_ID_HEADER, log_rest_exchange
from wharf.gateway.router import PATH_PREFIX, Router
from wharf.gateway.routes import Graph, Replica, Revision, Service
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.streaming import Stream, relay
from wharf.gateway.upstream import HOP_BY_HOP, Answer, Headers, HttpUpstream
from wharf.graph import CallTarget, GraphRunner, ServiceTarget, StepAnswer, service_call
from wharf.graph import Headers as GraphHeaders
from wharf.logger import PayloadLogger
from wharf.telemetry import tracing

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

REVISION_HEADER = b"x-wharf-revision"
ARM_HEADER = ARM.encode()
_ROLLOUT_REWARDS = ThompsonSampling()  # a bandit rollout judges 0/1 rewards, as wharf.bandit.rollout does
_CALLER = CALLER_HEADER.encode()  # counted on its edge (edges.py), never forwarded
REPOSITORY_REFUSED = "repository load/unload are control operations; use the control plane"
_JSON: Headers = [(b"content-type", b"application/json")]  # copy it before appending
# Set again for the replica: the body is whole (no 100-continue), and the Host is the replica's.
_NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect", b"x-forwarded-for", _CALLER}
# A graph's steps send JSON and read the answers themselves (uncompressed).
_NOT_TO_STEPS = frozenset({b"content-type", b"accept-encoding"})


_CODES: HttpCodes[Answer] = HttpCodes(lambda answer: answer.status)
_GRAPH_CODES: HttpCodes[tuple[int, bytes]] = HttpCodes(lambda answer: answer[0])


class RestProxy:
    """The gateway's ASGI application."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        upstream: HttpUpstream,
        settings: GatewaySettings,
        payloads: PayloadLogger,
        metrics: GatewayMetrics | None = None,
        bandits: BanditLedger | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._metrics = metrics or GatewayMetrics(dispatcher)
        self._upstream = upstream
        self._payloads = payloads
        self._limit = settings.max_request_bytes
        self._stream_above = settings.stream_request_bytes
        self._graph_runners: dict[Graph, _GraphRun] = {}  # the runners of graphs of `_runners_router`
        self.bandits = bandits or BanditLedger(
            RecentRequests(settings.feedback_ttl_s, settings.feedback_memory, time.monotonic)
        )
        self._runners_router: Router | None = None
        self._body_timeout = settings.body_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if tracing.enabled:
            method, path = scope["method"], scope["path"]
            attributes = {"http.request.method": method, "url.path": path}
            with tracing.server_span(f"{method} {path}", scope["headers"], attributes) as span:
                answer = await self._answer(scope, receive)
                span.set_attribute("http.response.status_code", answer.status)
                tracing.failed(answer.status)
                if answer.__class__ is Stream:  # the span covers the stream, to its end
                    return await relay(answer, receive, send)  # type: ignore[arg-type]
        else:
            answer = await self._answer(scope, receive)
        if answer.__class__ is Stream:
            return await relay(answer, receive, send)  # type: ignore[arg-type]
        headers = answer.headers
        headers.append((b"content-length", b"%d" % len(answer.body)))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, scope: dict[str, Any], receive: Receive) -> Answer | Stream:
        """The answer to the request: a replica's (whole, or a Stream still coming), or the gateway's own error."""
        try:
            return await self._forward(scope, receive)
        except ActivationFailed as e:
            answer = _error(e.http_status, e.message)
            answer.headers.append((b"retry-after", b"%d" % e.retry_after_s))
        except WharfError as e:
            answer = _error(e.http_status, e.message)
            if isinstance(e, MethodNotAllowed) and e.allowed:
                answer.headers.append((b"allow", e.allowed.encode()))
        except Exception as e:  # a fault of the gateway itself
            log.exception("unhandled error", extra={"path": scope["path"]})
            answer = _error(500, f"gateway error: {type(e).__name__}: {e}")
        return answer

    async def _forward(self, scope: dict[str, Any], receive: Receive) -> Answer | Stream:
        router = self._dispatcher.router  # this request keeps this table, whatever update() does meanwhile
        host, pinned, length, headers, caller = _request_headers(scope)
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        graph = router.graph(host, path)
        if graph is not None:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"graph {graph.key!r} takes a POST of its request", "POST")
            if tracing.enabled:
                tracing.annotate({"wharf.graph": graph.key})
            body = await read_body(receive, self._limit, self._body_timeout)
            runner, bandits = self._graph_runner(router, graph)
            if path.endswith("/feedback") and path in ("/feedback", f"{PATH_PREFIX}{graph.key}/feedback"):
                return self._graph_feedback(graph, bandits, body, headers)
            sent, request_id = _step_headers(headers), ""
            if bandits is not None:
                request_id = sent.get(REQUEST_ID) or sent.setdefault(REQUEST_ID, uuid.uuid4().hex)
            run = runner.run(body, sent)
            status, answer = await self._dispatcher.edges.counted(caller, graph.key, run, _GRAPH_CODES)
            if bandits is None:
                return Answer(status, list(_JSON), answer)
            arms = self.bandits.recent.arms(request_id).encode("latin-1")
            return Answer(
                status, [*_JSON, (REQUEST_ID_HEADER, request_id.encode("latin-1")), (ARM_HEADER, arms)], answer
            )
        try:
            route = router.route(host, path)
        except NotFound:
            if path == "/metrics" and scope["method"] == "GET":  # a Host of no service: the gateway's own
                return Answer(200, [(b"content-type", self._metrics.content_type.encode())], self._metrics.render())
            raise
        if route.service.api_keys:
            require_key(route.service, _key_of(headers))
        if _is_repository_api(route.path):
            raise Forbidden(REPOSITORY_REFUSED)
        request_id = None
        if route.service.bandit:
            if route.path == "/feedback":
                return await self._service_feedback(route.service, scope, receive)
            request_id = _request_id(headers)
        revision = router.revision(route.service, pinned or route.tag_revision)
        if revision.placement is not None:  # multi-model: to a replica with the model loaded (model_routing.py)
            revision = revision.placement.revision_for(model_of_path(route.path), revision)
        if tracing.enabled:
            tracing.annotate(
                {"wharf.service": route.service.key, "wharf.revision": revision.name, "wharf.route": route.path}
            )
        query = scope["query_string"]
        target = f"{route.path}?{query.decode('latin-1')}" if query else route.path
        method = scope["method"]
        body = await start_body(receive, self._limit, self._body_timeout)
        if not isinstance(body, bytes):  # a larger body, still arriving
            streamed = await self._stream(route.service, revision, method, target, headers, length, body, caller)
            if not isinstance(streamed, bytes):
                return streamed if request_id is None else self._armed(route.service, revision, request_id, streamed)
            body = streamed
        upstream = self._upstream

        def send(replica: Replica) -> Awaitable[Answer | Stream]:
            sent = tracing.outgoing_headers(headers) if tracing.enabled else headers  # in the shadow's span too
            return upstream.send(replica, method, target, sent, body)

        log_answer = log_rest_exchange(self._payloads, revision.logger, method, headers, body)
        self._dispatcher.mirror(router, route.service, send, _CODES, caller)
        answer = await self._logged(revision, send, log_answer, caller)
        if log_answer is not None and not any(key == REQUEST_ID_HEADER for key, _ in answer.headers):
            # The client learns the id its payload events carry (the gateway may have made it).
            answer.headers.append(next((k, v) for k, v in headers if k == REQUEST_ID_HEADER))
        return answer if request_id is None else self._armed(route.service, revision, request_id, answer)

    def _armed(self, service: Service, revision: Revision, request_id: str, answer: Answer | Stream) -> Answer | Stream:
        """`answer` to a request routed by the bandit of `service`: counted as a pull of `revision` and remembered
        for its feedback, with the id and the arm in its headers."""
        bandit = service_bandit(service.namespace, service.name)
        self.bandits.route(request_id, bandit, revision.name, service.namespace, service.model)
        if not any(key == REQUEST_ID_HEADER for key, _ in answer.headers):
            answer.headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
        answer.headers.append((ARM_HEADER, revision.name.encode("latin-1")))
        return answer

    async def _stream(
        self,
        service: Service,
        revision: Revision,
        method: str,
        target: str,
        headers: Headers,
        length: bytes | None,
        body: BodyStream,
        caller: str | None,
    ) -> Answer | Stream | bytes:
        """The answer to a request whose body is forwarded as it arrives; or the whole body, read, where it may
        not be streamed (see the module docstring)."""
        declared = int(length) if length is not None else None
        if declared is not None and declared > self._limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {self._limit} bytes")
        if (
            (declared is not None and declared <= self._stream_above)
            or revision.logger is not None
            or service.shadow is not None
            or not any(replica.ready for replica in revision.replicas)
            or (declared is None and await body.buffer(self._stream_above + 1))  # chunked, and ended soon enough
        ):
            return await body.read()
        upstream = self._upstream

        async def send(replica: Replica) -> Answer | Stream:
            try:
                sent = tracing.outgoing_headers(headers) if tracing.enabled else headers
                return await upstream.stream(replica, method, target, sent, body, declared)
            except (InvalidInput, PayloadTooLarge) as e:  # the client's body: answered, not the revision's fault
                return _error(e.http_status, e.message)

        return await self._dispatcher.forward(revision, send, _CODES, source=caller)

    async def _logged(
        self,
        revision: Revision,
        send: Callable[[Replica], Awaitable[Answer | Stream]],
        log_answer: Callable[[Answer], None] | None,
        source: str | None,
    ) -> Answer | Stream:
        """The answer of a replica of `revision` to a request from `source` (None: a client), handed to `log_answer`
        too (when the revision logs payloads; a Stream's once it ended, whole)."""
        try:
            answer = await self._dispatcher.forward(revision, send, _CODES, source=source)
        except WharfError as e:  # the gateway's own answer (no ready replica, timeout): logged as it goes out
            if log_answer is not None:
                log_answer(_error(e.http_status, e.message))
            raise
        if log_answer is not None:
            if answer.__class__ is Stream:
                stream: Stream = answer  # type: ignore[assignment]
                stream.keep(lambda body: log_answer(Answer(stream.status, stream.headers, body)))
            else:
                log_answer(answer)  # type: ignore[arg-type]
        return answer

    async def _service_feedback(self, service: Service, scope: dict[str, Any], receive: Receive) -> Answer:
        """A reward for an answer of `service`, whose rollout is a bandit over its revisions."""
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"the feedback of {service.key!r} takes a POST of a reward", "POST")
        body = await read_body(receive, self._limit, self._body_timeout)
        key = service_bandit(service.namespace, service.name)
        return self._credited(parse_feedback(body), key.__eq__, lambda _, reward: _ROLLOUT_REWARDS.check_reward(reward))

    def _graph_feedback(self, graph: Graph, bandits: GraphBandits | None, body: bytes, headers: Headers) -> Answer:
        """A reward for an answer of `graph`'s Bandit nodes: it needs the API key its arms' services ask for."""
        if bandits is None:
            raise NotFound(f"graph {graph.key!r} has no Bandit node: there is nothing to reward")
        for service in bandits.services:
            if service.api_keys:
                require_key(service, _key_of(headers))
        policies = bandits.policies()
        feedback = parse_feedback(body)
        return self._credited(feedback, policies.__contains__, lambda key, reward: policies[key].check_reward(reward))

    def _credited(
        self, feedback: Feedback, bandits: Callable[[str], bool], check: Callable[[str, float], Any]
    ) -> Answer:
        arms = self.bandits.credit(feedback, bandits, check)
        answer = {"request_id": feedback.request_id, "reward": feedback.reward, "arms": arms.split(",")}
        return Answer(200, list(_JSON), orjson.dumps(answer))

    def _graph_runner(self, router: Router, graph: Graph) -> _GraphRun:
        """The runner of `graph` of `router`'s table (kept while that table is the current one), and the arm choice
        of its Bandit nodes if it has any."""
        if router is not self._runners_router:
            if router is not self._dispatcher.router:  # a request that started before the table changed
                return self._new_graph_runner(router, graph)
            self._runners_router, self._graph_runners = router, {}
        runner = self._graph_runners.get(graph)
        if runner is None:
            runner = self._graph_runners[graph] = self._new_graph_runner(router, graph)
        return runner

    def _new_graph_runner(self, router: Router, graph: Graph) -> _GraphRun:
        """A runner whose steps call services through `router`: the predict path of the service's protocol on its
        model (`wharf.graph.protocols`), as KServe's graph router does, with the request's headers."""
        upstream = self._upstream

        async def call(target: CallTarget, body: bytes, headers: GraphHeaders) -> StepAnswer:
            if not isinstance(target, ServiceTarget):
                raise Unimplemented(f"graph {graph.key!r}: only serviceName steps are served")
            service = router.service(f"{graph.namespace}/{target.name}")
            require_key(service, presented_key(headers.items()))
            revision = router.revision(service)
            path, called = service_call(service.protocol, service.model)
            sent = [*_JSON, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
            log_answer = log_rest_exchange(self._payloads, revision.logger, "POST", sent, body)

            def send(replica: Replica) -> Awaitable[Answer]:
                traced = tracing.outgoing_headers(sent) if tracing.enabled else sent  # the step's span
                return upstream.send(replica, "POST", path, traced, body)

            answer = await self._logged(revision, send, log_answer, graph.key)
            if answer.__class__ is Stream:  # a step's answer is read whole, even a stream
                return StepAnswer(answer.status, await answer.read(), called)  # type: ignore[union-attr]
            return StepAnswer(answer.status, answer.body, called)  # type: ignore[union-attr]

        bandits = None
        if has_bandit(graph.nodes):
            bandits = GraphBandits(self.bandits, graph, lambda key: _found(router, key), self._dispatcher.rng)
        choose = bandits.choose if bandits is not None else None
        runner = GraphRunner(
            graph.nodes, call, self._dispatcher.rng, step_timeout_s=graph.step_timeout_s, choose=choose
        )
        return _GraphRun(runner, bandits)


class _GraphRun(NamedTuple):
    runner: GraphRunner
    bandits: GraphBandits | None


def _found(router: Router, key: str) -> Service | None:
    try:
        return router.service(key)
    except NotFound:
        return None


def _request_id(headers: Headers) -> str:
    """The request's `x-request-id`, made and added to `headers` where it has none."""
    for key, value in headers:
        if key == REQUEST_ID_HEADER:
            return value.decode("latin-1")
    made = uuid.uuid4().hex
    headers.append((REQUEST_ID_HEADER, made.encode()))
    return made


def _key_of(headers: Headers) -> str | None:
    """The API key a request carries (see `wharf.gateway.api_keys`)."""
    return presented_key((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k in _KEY_HEADERS)


_KEY_HEADERS = frozenset({b"authorization", b"x-api-key"})


def _step_headers(headers: Headers) -> dict[str, str]:
    """The forwarded request headers a graph's steps send on (repeated ones joined), bar the body's own."""
    steps: dict[str, str] = {}
    for key, value in headers:
        if key not in _NOT_TO_STEPS:
            name, text = key.decode("latin-1"), value.decode("latin-1")
            steps[name] = f"{steps[name]}, {text}" if name in steps else text
    return steps


def _request_headers(scope: dict[str, Any]) -> tuple[str, str | None, bytes | None, Headers, str | None]:
    """The Host, the pinned revision, the Content-Length, the headers to forward (x-forwarded-* set, hop-by-hop
    dropped) and the caller the request names (`x-wharf-caller`)."""
    host = forwarded_for = connection = pinned = length = caller = None
    has_forwarded_host = False
    headers: Headers = []
    for key, value in scope["headers"]:
        if key in _NOT_FORWARDED:
            if key == b"host":
                host = value
            elif key == b"content-length":
                length = value
            elif key == b"x-forwarded-for":
                forwarded_for = value
            elif key == b"connection":
                connection = value
            elif key == _CALLER:
                caller = value.decode("latin-1")
            continue
        if key == REVISION_HEADER:
            pinned = value.decode("latin-1")
        elif key == b"x-forwarded-host":
            has_forwarded_host = True
        headers.append((key, value))
    if connection is not None:  # the headers the Connection header names are hop-by-hop too
        named = {token.strip() for token in connection.lower().split(b",")}
        headers = [(k, v) for k, v in headers if k not in named]
    client = scope.get("client")
    if client:
        address = client[0].encode("latin-1")
        headers.append((b"x-forwarded-for", forwarded_for + b", " + address if forwarded_for else address))
    if host is not None and not has_forwarded_host:
        headers.append((b"x-forwarded-host", host))
    return (host or b"").decode("latin-1"), pinned, length, headers, caller


def _is_repository_api(path: str) -> bool:
    """Whether a replica would take `path` (the raw path forwarded) for its model repository API: `/v2/repository`
    and below, however spelled (percent-encoded, with empty or dot segments). Cheap for the paths of inference."""
    if "repository" not in path and "%" not in path:
        return False
    parts = [part for part in posixpath.normpath(unquote(path)).split("/") if part]
    return parts[:2] == ["v2", "repository"]


def _error(status: int, message: str) -> Answer:
    return Answer(status, list(_JSON), orjson.dumps({"error": message}))
