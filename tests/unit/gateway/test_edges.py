"""Who calls whom through the gateway: edges counted from callers, the clients' share left over, driven by an
injected clock; then the proxies that name the caller (REST header, gRPC metadata, graph steps)."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from wharf.errors import RequestTimeout
from wharf.gateway import Gateway, GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.gateway.codes import Code, HttpCodes
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.edges import CALLER_HEADER, CLIENT, Edges, EdgeStats
from wharf.gateway.proxy import RestProxy
from wharf.gateway.routes import Graph
from wharf.gateway.stats import Stats
from wharf.graph import Node, ServiceTarget, Step
from wharf.logger import PayloadLogger
from wharf.transformer import PredictorSettings

from .tables import revision, service, table
from .test_grpc_proxy import INFER, infer, start_replica
from .test_proxy import FakeUpstream, call

OK, FAILED, REFUSED = Code("200", False), Code("500", True), Code("400", False)
TRANSFORMER, EXPLAINER = "default/iris/transformer", "default/iris/explainer"
GRAPH = Graph("default", "g", {"root": Node("Sequence", (Step("s", ServiceTarget("iris")),))}, 5.0)
TABLE = table(service(traffic=(("iris-1", 100),), revisions=(revision("iris-2"),)), graphs=(GRAPH,))


class Clock:
    def __init__(self, now: float = 1005.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def edges(max_edges: int = 100) -> tuple[Edges, Stats, Clock]:
    """Edges over revision windows of 60 s in buckets of 10 s, for TABLE."""
    clock = Clock()
    stats = Stats(window_s=60, bucket_s=10, clock=clock)
    counted = Edges(stats, window_s=60, bucket_s=10, max_edges=max_edges)
    counted.update(TABLE)
    return counted, stats, clock


def sent(counted: Edges, stats: Stats, source: str | None, revision: str, latency_s: float, code: Code) -> None:
    """One request to `revision` as the dispatcher counts it: in the revision's window, and on its edge if any."""
    now = stats.clock()
    stats.window(revision).record(now, latency_s, code)
    if source is not None:
        counted.record(source, revision, now, latency_s, code)


def by_source(snapshot: tuple[EdgeStats, ...]) -> dict[tuple[str, str | None], EdgeStats]:
    return {(edge.source, edge.revision or edge.service): edge for edge in snapshot}


def test_a_callers_edge_and_the_clients_share_left_over() -> None:
    counted, stats, _ = edges()
    for ms in range(1, 11):  # the transformer's calls: 1 .. 10 ms, the last one failing
        sent(counted, stats, TRANSFORMER, "iris-1", ms / 1000, FAILED if ms == 10 else OK)
    for _ in range(30):  # clients' calls: 100 ms each, a 4xx among them (a request, not an error)
        sent(counted, stats, None, "iris-1", 0.1, OK)
    sent(counted, stats, None, "iris-1", 0.1, REFUSED)
    got = by_source(counted.snapshot(TABLE))
    assert set(got) == {(TRANSFORMER, "iris-1"), (CLIENT, "iris-1")}
    transformer, client = got[(TRANSFORMER, "iris-1")], got[(CLIENT, "iris-1")]
    assert (transformer.service, transformer.requests, transformer.errors) == ("default/iris", 10, 1)
    assert transformer.p50_ms == pytest.approx(5, rel=0.1) and transformer.p99_ms == pytest.approx(10, rel=0.1)
    assert (client.requests, client.errors) == (31, 0)
    assert client.p50_ms == pytest.approx(100, rel=0.05) and client.p99_ms == pytest.approx(100, rel=0.05)
    # The window spans 55 s at 1005 (its oldest bucket began at 950): requests per second over that.
    assert transformer.requests_per_s == pytest.approx(10 / 55) and client.requests_per_s == pytest.approx(31 / 55)


def test_edges_leave_with_their_window_and_are_forgotten_once_empty() -> None:
    counted, stats, clock = edges(max_edges=1)
    sent(counted, stats, TRANSFORMER, "iris-1", 0.01, OK)
    sent(counted, stats, None, "iris-1", 0.01, OK)
    clock.now = 1065.0  # the requests' bucket (1000 .. 1010) has left the window
    assert counted.snapshot(TABLE) == ()
    sent(counted, stats, EXPLAINER, "iris-1", 0.01, OK)  # the empty edge, forgotten, left room for another
    assert [(e.source, e.requests) for e in counted.snapshot(TABLE)] == [(EXPLAINER, 1)]


def test_a_caller_that_names_nothing_of_the_table_counts_as_a_client() -> None:
    counted, stats, _ = edges(max_edges=2)
    for source in ("default/other/transformer", "default/iris", "default/iris/a/b", CLIENT, "default/g/x"):
        sent(counted, stats, source, "iris-1", 0.01, OK)
    sent(counted, stats, TRANSFORMER, "gone-1", 0.01, OK)  # a revision no longer in the table
    assert [(e.source, e.requests) for e in counted.snapshot(TABLE)] == [(CLIENT, 5)]
    sent(counted, stats, TRANSFORMER, "iris-1", 0.01, OK)
    sent(counted, stats, EXPLAINER, "iris-1", 0.01, OK)
    sent(counted, stats, "default/iris/other", "iris-2", 0.01, OK)  # a third edge: over the cap of 2
    got = by_source(counted.snapshot(TABLE))
    assert {key: edge.requests for key, edge in got.items()} == {
        (TRANSFORMER, "iris-1"): 1,
        (EXPLAINER, "iris-1"): 1,
        (CLIENT, "iris-1"): 5,
        (CLIENT, "iris-2"): 1,
    }


def test_a_new_table_drops_the_edges_to_revisions_it_has_not() -> None:
    counted, stats, _ = edges(max_edges=1)
    sent(counted, stats, TRANSFORMER, "iris-2", 0.01, OK)
    moved = table(service(traffic=(("iris-1", 100),)), graphs=(GRAPH,))
    counted.update(moved)
    stats.retain(["iris-1"])
    sent(counted, stats, TRANSFORMER, "iris-1", 0.01, OK)  # room: the edge to iris-2 went with it
    assert [(e.source, e.revision) for e in counted.snapshot(moved)] == [(TRANSFORMER, "iris-1")]


@pytest.mark.anyio
async def test_a_graphs_requests_are_counted_whoever_sends_them() -> None:
    counted, _, clock = edges()
    codes: HttpCodes[int] = HttpCodes(lambda status: status)

    async def answer(status: int) -> int:
        clock.now += 0.02
        return status

    async def timeout() -> int:
        raise RequestTimeout("slow")

    assert await counted.counted(None, "default/g", answer(200), codes) == 200
    assert await counted.counted(TRANSFORMER, "default/g", answer(502), codes) == 502
    with pytest.raises(RequestTimeout):
        await counted.counted(None, "default/g", timeout(), codes)
    got = by_source(counted.snapshot(TABLE))
    assert {key: (e.requests, e.errors, e.revision) for key, e in got.items()} == {
        (TRANSFORMER, "default/g"): (1, 1, None),
        (CLIENT, "default/g"): (2, 1, None),  # the gateway's own 504 is an error too
    }
    assert got[(TRANSFORMER, "default/g")].p50_ms == pytest.approx(20, rel=0.05)


def test_a_transformer_names_itself_in_every_call_to_its_predictor() -> None:
    options = PredictorSettings(host="iris-predictor.default.example.com", caller=TRANSFORMER).client_options()
    assert options["headers"] == {"host": "iris-predictor.default.example.com", CALLER_HEADER: TRANSFORMER}
    assert options["metadata"] == {CALLER_HEADER: TRANSFORMER}
    assert PredictorSettings().client_options()["headers"] is None


# --- through the proxies --------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_the_rest_proxy_counts_the_caller_it_is_told_and_a_graphs_steps_and_strips_the_header() -> None:
    config = GatewaySettings()
    dispatcher = Dispatcher(config, random.Random(0))
    dispatcher.update(TABLE)
    upstream = FakeUpstream()
    app = RestProxy(dispatcher, upstream, config, PayloadLogger())  # type: ignore[arg-type]
    iris = [(b"host", b"iris.default.example.com")]
    await call(app, "/v2/models/iris/infer", [*iris, (CALLER_HEADER.encode(), TRANSFORMER.encode())], b"{}")
    await call(app, "/v2/models/iris/infer", iris, b"{}")
    await call(app, "/", [(b"host", b"g.default.example.com")], b"{}")
    assert all(CALLER_HEADER.encode() not in dict(headers) for _, _, _, headers, _ in upstream.sent)
    got = by_source(dispatcher.edges.snapshot(TABLE))
    assert {key: edge.requests for key, edge in got.items()} == {
        (TRANSFORMER, "iris-1"): 1,
        ("default/g", "iris-1"): 1,
        (CLIENT, "iris-1"): 1,
        (CLIENT, "default/g"): 1,
    }
    assert got[("default/g", "iris-1")].service == "default/iris"


@pytest.mark.anyio
async def test_the_grpc_proxy_counts_the_caller_its_metadata_names_and_does_not_pass_it_on() -> None:
    server, target = await start_replica("one")
    replica = Replica("one", "http://unused:1", target, True)
    revisions = {"iris-1": Revision("iris-1", (replica,), 5.0), "iris-2": Revision("iris-2", (replica,), 5.0)}
    grpc_table = RouteTable((Service("default", "iris", "iris", (("iris-1", 100),), {}, revisions, ("iris-2", 100)),))
    gateway = Gateway(rng=random.Random(1))
    gateway.update(grpc_table)
    _, grpc_port = await gateway.start("127.0.0.1", 0, 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            caller = ((CALLER_HEADER, TRANSFORMER), ("x-trace", "t1"))
            call = channel.unary_unary(INFER)(infer("iris"), metadata=caller, timeout=5)
            await call
            assert dict(await call.trailing_metadata())["x-seen"] == "x-trace"
            for _ in range(100):  # the shadow's copy, which nobody waits for, is the transformer's too
                if len(gateway.edges()) == 2:
                    break
                await asyncio.sleep(0.01)
        got = {(e.source, e.revision): e.requests for e in gateway.edges()}
        assert got == {(TRANSFORMER, "iris-1"): 1, (TRANSFORMER, "iris-2"): 1}
    finally:
        await gateway.stop(0.5)
        await server.stop(None)
