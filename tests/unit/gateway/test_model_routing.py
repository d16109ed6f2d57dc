"""By-model replica choice: requests for a model of a multi-model revision go to the replicas placed for it."""

from __future__ import annotations

import pickle
import random

import pytest

from wharf.gateway import GatewaySettings
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.model_routing import ModelPlacement, model_of_path
from wharf.gateway.proxy import RestProxy
from wharf.gateway.router import Router
from wharf.gateway.routes import Revision
from wharf.logger import PayloadLogger

from .tables import replica, service, table
from .test_proxy import FakeUpstream, call

pytestmark = pytest.mark.anyio

HOST = [(b"host", b"mms.default.example.com")]


def placed(placement: ModelPlacement | None) -> Revision:
    return Revision("mms-1", (replica("a"), replica("b"), replica("c"), replica("down", ready=False)), 5.0,
                    placement=placement)  # fmt: skip


def proxy(placement: ModelPlacement | None) -> tuple[RestProxy, FakeUpstream]:
    config = GatewaySettings()
    dispatcher = Dispatcher(config, random.Random(0))
    dispatcher.update(table(service("mms", traffic=(("mms-1", 100),), revisions=(placed(placement),))))
    upstream = FakeUpstream()
    return RestProxy(dispatcher, upstream, config, PayloadLogger()), upstream  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/models/m1:predict", "m1"),
        ("/v1/models/m1", "m1"),
        ("/v2/models/m1/infer", "m1"),
        ("/v2/models/m1/versions/2/infer", "m1"),
        ("/v2/models/m1", "m1"),
        ("/v2/models/", None),
        ("/v2/health/ready", None),
        ("/metrics", None),
    ],
)
def test_the_model_a_path_names(path: str, model: str | None) -> None:
    assert model_of_path(path) == model


def test_a_revision_narrows_to_the_ready_replicas_placed_for_a_model() -> None:
    placement = ModelPlacement({"m1": ("b", "down"), "m2": ("down",), "m3": ()})
    revision = placed(placement)
    narrowed = placement.revision_for("m1", revision)
    assert [r.id for r in narrowed.replicas] == ["b"] and narrowed.placement is None
    assert placement.revision_for("m1", revision) is narrowed  # built once per model and table
    for model in ("m2", "m3", "unknown", None):  # none ready, none placed, not a placed model, no model
        assert placement.revision_for(model, revision) is revision


def test_a_placement_crosses_to_the_gateway_process_without_its_cache() -> None:
    placement = ModelPlacement({"m1": ("a",)})
    placement.revision_for("m1", placed(placement))
    copy = pickle.loads(pickle.dumps(placement))
    assert copy.replicas == {"m1": ("a",)} and copy._narrowed == {}


async def test_requests_for_a_model_go_to_the_replicas_that_have_it_loaded() -> None:
    app, upstream = proxy(ModelPlacement({"m1": ("c",), "m2": ("a", "b")}))
    for _ in range(6):
        assert (await call(app, "/v1/models/m1:predict", HOST, b"{}"))[0] == 201
    assert {sent[0] for sent in upstream.sent} == {"c"}
    upstream.sent.clear()
    for _ in range(6):
        await call(app, "/v2/models/m2/infer", HOST, b"{}")
    assert {sent[0] for sent in upstream.sent} == {"a", "b"}
    upstream.sent.clear()
    for _ in range(12):  # a model nobody placed: the whole revision, least loaded
        await call(app, "/v2/models/other/infer", HOST, b"{}")
    assert {sent[0] for sent in upstream.sent} == {"a", "b", "c"}


async def test_a_revision_without_placement_is_balanced_as_before() -> None:
    app, upstream = proxy(None)
    for _ in range(12):
        await call(app, "/v1/models/m1:predict", HOST, b"{}")
    assert {sent[0] for sent in upstream.sent} == {"a", "b", "c"}


def test_grpc_finds_the_service_of_a_placed_model() -> None:
    router = Router(
        table(service("mms", traffic=(("mms-1", 100),), revisions=(placed(ModelPlacement({"m1": ("a",)})),))),
        random.Random(0),
    )
    assert router.service_of_model("m1").name == "mms"
