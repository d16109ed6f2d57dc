"""Bandit feedback in the gateway: parsing rewards, refusing unknown, expired and repeated ids, and the proxy's
Bandit graphs and bandit services (ids, `x-wharf-arm`, `/feedback`)."""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import EpsilonGreedy, ThompsonSampling
from wharf.errors import InvalidInput
from wharf.gateway import GatewaySettings
from wharf.gateway.api_keys import digest
from wharf.gateway.bandits import BanditLedger, graph_bandit, service_bandit
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.feedback import Feedback, FeedbackRefused, Pull, RecentRequests, parse_feedback
from wharf.gateway.proxy import RestProxy
from wharf.gateway.routes import Graph
from wharf.graph import Node, ServiceTarget, Step
from wharf.logger import PayloadLogger

from .tables import replica, revision, service, table
from .test_proxy import FakeUpstream, call


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- parsing ----------------------------------------------------------------------------------------------------
def test_feedback_bodies() -> None:
    assert parse_feedback(b'{"request_id": "r1", "reward": 1}') == Feedback("r1", 1.0)
    seldon = b'{"request": {}, "response": {"meta": {"puid": "r2"}, "data": {}}, "reward": 0.5, "truth": [2]}'
    assert parse_feedback(seldon) == Feedback("r2", 0.5, {"output-0": [2]})
    labelled = b'{"request_id": "r3", "reward": -2.5, "truth": {"species": [1, 0]}}'
    assert parse_feedback(labelled) == Feedback("r3", -2.5, {"species": [1, 0]})
    assert parse_feedback(b'{"request_id": "r4", "reward": 0, "truth": 7}').truth == {"output-0": [7]}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{reward", "must be JSON"),
        (b"[1]", "a JSON object"),
        (b'{"request_id": "r"}', "reward: must be a finite number"),
        (b'{"request_id": "r", "reward": true}', "reward: must be a finite number"),
        (b'{"request_id": "r", "reward": "1"}', "reward: must be a finite number"),
        (b'{"reward": 1}', "request_id: required"),
        (b'{"request_id": "", "reward": 1}', "request_id: must be"),
        (b'{"request_id": 7, "reward": 1}', "request_id: must be"),
        (b'{"response": {"meta": {}}, "reward": 1}', "response.meta.puid: must be"),
        (b'{"response": [], "reward": 1}', "response.meta.puid: must be"),
        (b'{"request_id": "r", "reward": 1, "truth": {}}', "truth:"),
        (b'{"request_id": "r", "reward": 1, "truth": {"y": 1}}', "truth:"),
        (b'{"request_id": "r", "reward": 1, "truth": null}', "truth:"),
    ],
)
def test_bad_feedback_bodies_name_the_field(body: bytes, names: str) -> None:
    with pytest.raises(InvalidInput, match=names):
        parse_feedback(body)


# --- recent requests --------------------------------------------------------------------------------------------
PULL = Pull("InferenceGraph/default/g/root", "a", "default", "iris-a")


def test_an_id_earns_one_reward_within_its_time_to_live() -> None:
    clock = Clock()
    recent = RecentRequests(ttl_s=10, capacity=100, clock=clock)
    recent.remember("r1", PULL)
    recent.remember("r2", PULL)
    with pytest.raises(FeedbackRefused, match="unknown") as unknown:
        recent.claim("nope", lambda bandit: True)
    assert unknown.value.http_status == 404
    assert recent.claim("r1", lambda bandit: True) == (PULL,)
    with pytest.raises(FeedbackRefused, match="already rewarded") as again:
        recent.claim("r1", lambda bandit: True)
    assert again.value.http_status == 409
    clock.now = 10.5
    with pytest.raises(FeedbackRefused, match="expired") as expired:
        recent.claim("r2", lambda bandit: True)
    assert expired.value.http_status == 410
    clock.now = 21  # twice the time to live: forgotten
    with pytest.raises(FeedbackRefused, match="unknown"):
        recent.claim("r2", lambda bandit: True)
    assert len(recent) == 0


def test_another_bandits_id_is_unknown_and_a_refused_reward_leaves_the_id_unrewarded() -> None:
    recent = RecentRequests(ttl_s=10, capacity=100, clock=Clock())
    recent.remember("r1", PULL)
    with pytest.raises(FeedbackRefused, match="unknown"):
        recent.claim("r1", lambda bandit: bandit.startswith("InferenceService/"))

    def refuse(pull: Pull) -> None:
        raise InvalidInput("reward: from 0 to 1")

    with pytest.raises(InvalidInput):
        recent.claim("r1", lambda bandit: True, refuse)
    assert recent.claim("r1", lambda bandit: True) == (PULL,)


def test_memory_is_bounded_and_an_id_through_two_bandits_names_both_arms() -> None:
    recent = RecentRequests(ttl_s=10, capacity=2, clock=Clock())
    recent.remember("r1", PULL)
    recent.remember("r1", PULL._replace(bandit="InferenceGraph/default/g/inner", arm="x"))
    assert recent.arms("r1") == "a,x"
    recent.remember("r2", PULL)
    recent.remember("r3", PULL)
    assert len(recent) == 2 and recent.arms("r1") == ""  # the oldest went first


# --- the ledger -------------------------------------------------------------------------------------------------
def test_the_view_is_the_control_planes_totals_plus_what_they_do_not_include_yet() -> None:
    ledger = BanditLedger(RecentRequests(10, 100, Clock()), gateway="g1")
    key = "InferenceGraph/default/g/root"
    for _ in range(3):
        ledger.pulled(key, "a")
    ledger.rewarded(key, "a", 1.0)
    report = ledger.report()
    assert report is not None and report.totals[key]["a"] == ArmStats("a").pulled().pulled().pulled().rewarded(1.0)
    assert ledger.report() is not None  # not synced yet: it asks again
    # the control plane applied two of the three pulls; another gateway pulled b once
    applied = {key: {"a": ArmStats("a", pulls=2)}}
    base = {key: {"a": ArmStats("a", pulls=2), "b": ArmStats("b", pulls=1)}}
    ledger.arms_state(base, applied)
    assert ledger.view(key, ["a", "b", "c"]) == [
        ArmStats("a").pulled().pulled().pulled().rewarded(1.0),
        ArmStats("b", pulls=1),
        ArmStats("c"),
    ]
    assert ledger.report() is None  # nothing new since
    ledger.pulled(key, "b")
    assert ledger.view(key, ["b"]) == [ArmStats("b", pulls=2)]
    assert ledger.report() is not None


# --- through the proxy ------------------------------------------------------------------------------------------
ARMS = ("iris-a", "iris-b")
BANDIT = Graph(
    "default",
    "g",
    {"root": Node("Bandit", tuple(Step(n, ServiceTarget(n)) for n in ARMS), EpsilonGreedy(epsilon=0.0))},
    5.0,
)
GRAPH_HOST = [(b"host", b"g.default.example.com")]


def bandit_proxy(*services_: object, graph: Graph = BANDIT) -> tuple[RestProxy, FakeUpstream, BanditLedger]:
    config = GatewaySettings()
    dispatcher = Dispatcher(config, random.Random(0))
    services = services_ or tuple(service(n, traffic=((f"{n}-1", 100),)) for n in ARMS)
    dispatcher.update(table(*services, graphs=(graph,)))  # type: ignore[arg-type]
    upstream = FakeUpstream()
    ledger = BanditLedger(RecentRequests(60, 1000, Clock()))
    return RestProxy(dispatcher, upstream, config, PayloadLogger(), bandits=ledger), upstream, ledger  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_bandit_graph_answers_its_id_and_arm_and_takes_feedback_once() -> None:
    app, upstream, ledger = bandit_proxy()
    status, headers, body = await call(app, "/", GRAPH_HOST, b'{"instances":[1]}')
    assert status == 200 and body == b"answer"
    request_id, arm = headers[b"x-request-id"].decode(), headers[b"x-wharf-arm"].decode()
    assert arm in ARMS and upstream.sent[0][0] == f"{arm}-1-r0"
    assert dict(upstream.sent[0][3])[b"x-request-id"] == request_id.encode()  # the step carries the id made
    key = graph_bandit("default", "g", "", "root")
    assert ledger.view(key, [arm])[0].pulls == 1

    feedback = orjson.dumps({"request_id": request_id, "reward": 1})
    status, _, body = await call(app, "/serving/default/g/feedback", [], feedback)
    assert (status, orjson.loads(body)) == (200, {"request_id": request_id, "reward": 1.0, "arms": [arm]})
    assert ledger.view(key, [arm])[0].mean == 1.0
    status, _, body = await call(app, "/feedback", GRAPH_HOST, feedback)
    assert status == 409 and b"already rewarded" in body
    status, _, body = await call(app, "/feedback", GRAPH_HOST, b'{"request_id": "x", "reward": 1}')
    assert status == 404 and orjson.loads(body)["error"].startswith("request_id: 'x' is unknown")


@pytest.mark.anyio
async def test_a_client_id_is_kept_and_a_reward_outside_the_policys_range_refused() -> None:
    graph = dataclasses.replace(
        BANDIT, nodes={"root": dataclasses.replace(BANDIT.nodes["root"], policy=ThompsonSampling())}
    )
    app, _, _ = bandit_proxy(graph=graph)
    status, headers, _ = await call(app, "/", [*GRAPH_HOST, (b"x-request-id", b"mine")], b"{}")
    assert status == 200 and headers[b"x-request-id"] == b"mine"
    status, _, body = await call(app, "/feedback", GRAPH_HOST, b'{"request_id": "mine", "reward": 2}')
    assert status == 400 and b"reward: ThompsonSampling learns from rewards from 0 to 1" in body
    status, _, _ = await call(app, "/feedback", GRAPH_HOST, b'{"request_id": "mine", "reward": 1}')
    assert status == 200


@pytest.mark.anyio
async def test_an_arm_that_is_not_ready_gets_no_traffic() -> None:
    starting = service("iris-a", traffic=(("iris-a-1", 100),), revisions=(revision("iris-a-1", replica("s", False)),))
    app, upstream, _ = bandit_proxy(starting, service("iris-b", traffic=(("iris-b-1", 100),)))
    for _ in range(20):
        status, headers, _ = await call(app, "/", GRAPH_HOST, b"{}")
        assert status == 200 and headers[b"x-wharf-arm"] == b"iris-b"


@pytest.mark.anyio
async def test_a_graph_without_a_bandit_has_no_feedback_and_plain_graphs_get_no_arm_header() -> None:
    plain = Graph("default", "g", {"root": Node("Sequence", (Step("s", ServiceTarget("iris-a")),))}, 5.0)
    app, _, _ = bandit_proxy(graph=plain)
    status, _, body = await call(app, "/feedback", GRAPH_HOST, b'{"request_id": "r", "reward": 1}')
    assert status == 404 and b"no Bandit node" in body
    status, headers, _ = await call(app, "/", GRAPH_HOST, b"{}")
    assert status == 200 and b"x-wharf-arm" not in headers and b"x-request-id" not in headers


@pytest.mark.anyio
async def test_a_bandit_service_names_the_revision_that_answered_and_takes_its_feedback() -> None:
    canary = dataclasses.replace(service("iris", traffic=(("iris-1", 50), ("iris-2", 50))), bandit=True)
    app, _, ledger = bandit_proxy(canary)
    seen = {}
    for _ in range(10):
        status, headers, _ = await call(app, "/v1/models/iris:predict", [(b"host", b"iris.default.example.com")], b"{}")
        assert status == 201
        seen[headers[b"x-request-id"].decode()] = headers[b"x-wharf-arm"].decode()
    assert set(seen.values()) == {"iris-1", "iris-2"}
    request_id, arm = next(iter(seen.items()))
    outside = orjson.dumps({"request_id": request_id, "reward": 5})  # a rollout judges rewards from 0 to 1
    status, _, answer = await call(app, "/serving/default/iris/feedback", [], outside)
    assert status == 400 and b"reward:" in answer
    body = orjson.dumps({"request_id": request_id, "reward": 0.5})
    status, _, answer = await call(app, "/serving/default/iris/feedback", [], body)
    assert (status, orjson.loads(answer)["arms"]) == (200, [arm])
    assert ledger.view(service_bandit("default", "iris"), [arm])[0].reward_sum == 0.5
    status, _, _ = await call(app, "/serving/default/iris/feedback", [], body, method="GET")
    assert status == 405


@pytest.mark.anyio
async def test_feedback_to_a_graph_needs_the_key_its_arms_ask_for() -> None:
    locked = tuple(
        dataclasses.replace(service(n, traffic=((f"{n}-1", 100),)), api_keys=frozenset({digest("k")})) for n in ARMS
    )
    app, _, _ = bandit_proxy(*locked)
    status, headers, _ = await call(app, "/", [*GRAPH_HOST, (b"x-api-key", b"k")], b"{}")
    assert status == 200
    body = orjson.dumps({"request_id": headers[b"x-request-id"].decode(), "reward": 1})
    status, _, answer = await call(app, "/feedback", GRAPH_HOST, body)
    assert status == 401 and b"needs an API key" in answer
    status, _, _ = await call(app, "/feedback", [*GRAPH_HOST, (b"authorization", b"Bearer k")], body)
    assert status == 200


def test_a_ledger_forgets_the_bandits_a_new_table_has_no_more() -> None:
    ledger = BanditLedger(RecentRequests(60, 100, Clock()), gateway="g1")
    graph_key = graph_bandit("default", "g", "", "root")
    rollout = service_bandit("default", "iris")
    for key in (graph_key, rollout):
        ledger.pulled(key, "a")
    canary = dataclasses.replace(service("iris"), bandit=True)
    ledger.retain(table(canary, graphs=(BANDIT,)))
    assert set(ledger.totals()) == {graph_key, rollout}
    ledger.retain(table(service("iris"), graphs=(BANDIT,)))  # the rollout ended
    assert set(ledger.totals()) == {graph_key}
    ledger.retain(table(service("iris")))  # the graph deleted
    assert ledger.totals() == {} and ledger.view(graph_key, ["a"]) == [ArmStats("a")]
