"""What the reconciler hands the gateway for KServe's names and protocols: the predictor answers at
`NAME-predictor` with or without a transformer, each service carries its protocolVersion, and the controller
refuses a name that another service's predictor answers at."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wharf.control.controller import Controller
from wharf.errors import ConfigurationError
from wharf.gateway.router import Router
from wharf.gateway.routes import RouteTable

from .fakes import control_plane
from .test_controller import isvc, run, with_transformer


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    return control_plane(tmp_path)


def table(controller: Controller) -> RouteTable:
    return controller.reconciler.gateway.tables[-1]  # type: ignore[attr-defined,no-any-return]


def test_every_predictor_answers_at_its_predictor_host(controller: Controller) -> None:
    run(controller.apply(isvc("plain") + "---\n" + with_transformer(isvc("fronted"))))
    router = Router(table(controller), random.Random(0))
    plain = router.route("plain-predictor.default.example.com", "/").service
    assert (plain.name, plain.front, plain.aliases) == ("plain", True, ("plain-predictor",))
    assert router.route("plain.default.example.com", "/").service is plain
    behind = router.route("fronted-predictor.default.example.com", "/").service
    assert (behind.name, behind.front, behind.aliases) == ("fronted-predictor", False, ())
    front = router.route("fronted.default.example.com", "/").service
    assert front is not behind and front.aliases == ()
    assert router.route("latest-plain-predictor.default.example.com", "/").tag_revision == "plain-predictor-00001"


def test_services_carry_their_protocol_version(controller: Controller) -> None:
    v2 = isvc("two").replace("      storageUri:", "      protocolVersion: v2\n      storageUri:")
    run(controller.apply(v2 + "---\n" + isvc("one") + "---\n" + with_transformer(v2.replace("two", "fronted"))))
    protocols = {service.name: service.protocol for service in table(controller).services}
    assert protocols == {"two": "v2", "one": "v1", "fronted": "v1", "fronted-predictor": "v2"}


@pytest.mark.parametrize("name", ["iris-predictor", "latest-iris-predictor", "prev-iris-predictor"])
def test_a_name_a_plain_service_predictor_answers_at_is_refused(controller: Controller, name: str) -> None:
    run(controller.apply(isvc("iris")))
    with pytest.raises(ConfigurationError) as refused:
        run(controller.apply(isvc(name)))
    assert f"would both answer at {name}.default.example.com" in refused.value.message
    assert "iris" in refused.value.message and "rename one" in refused.value.message
    run(controller.apply(isvc(name, namespace="other")))  # another namespace: other hosts


def test_a_service_named_after_a_later_one_predictor_is_refused_too(controller: Controller) -> None:
    run(controller.apply(isvc("iris-predictor")))
    with pytest.raises(ConfigurationError, match=r"iris-predictor.default.example.com \(the predictor of iris\)"):
        run(controller.apply(isvc("iris")))
