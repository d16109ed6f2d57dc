"""The names a service answers at: its predictor's `NAME-predictor` alias (with its tag hosts and key), and the
host a gRPC request names (in the domain, a tag host, or outside it: an address that names nothing)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from wharf.errors import NotFound
from wharf.gateway.router import Router
from wharf.gateway.routes import Graph, Service

from .tables import service, table


def predictor_in_front(name: str = "iris", namespace: str = "default", **kwargs: Any) -> Service:
    plain = service(name, namespace, traffic=((f"{namespace}-{name}-1", 100),), **kwargs)
    return dataclasses.replace(plain, aliases=(f"{name}-predictor",))


def test_a_predictor_in_front_answers_at_its_predictor_name_too() -> None:
    iris = predictor_in_front(tags={"latest": "default-iris-1"})
    r = Router(table(iris), random.Random(0))
    assert r.route("iris-predictor.default.example.com:8080", "/v1/models/iris").service is iris
    assert r.route("IRIS-PREDICTOR.default.example.com", "/").service is iris
    tagged = r.route("latest-iris-predictor.default.example.com", "/")
    assert (tagged.service, tagged.tag_revision) == (iris, "default-iris-1")
    assert r.route("x", "/serving/default/iris-predictor/v2/models/iris/infer").path == "/v2/models/iris/infer"
    assert r.service("default/iris-predictor") is iris
    with pytest.raises(NotFound):
        r.route("iris-predictor.other.example.com", "/")


def test_a_service_own_name_wins_over_another_alias() -> None:
    """Stored by an older Wharf, a service named `iris-predictor` keeps its name."""
    iris = predictor_in_front()
    named = service("iris-predictor", traffic=(("named-1", 100),))
    for order in ((iris, named), (named, iris)):
        r = Router(table(*order), random.Random(0))
        assert r.route("iris-predictor.default.example.com", "/").service is named
        assert r.service("default/iris-predictor") is named
        assert r.host_route("iris-predictor.default.example.com") == (named, None)


def test_host_route_names_a_service_only_within_the_domain() -> None:
    a = predictor_in_front("iris", "a", tags={"prev": "a-iris-1"})
    b = predictor_in_front("iris", "b")
    chain = Graph("a", "chain", {}, 5.0)
    r = Router(table(a, b, graphs=(chain,)), random.Random(0))
    assert r.host_route("iris.a.example.com") == (a, None)
    assert r.host_route("iris.b.example.com:80") == (b, None)
    assert r.host_route("iris-predictor.B.example.com") == (b, None)
    assert r.host_route("prev-iris.a.example.com") == (a, "a-iris-1")
    for outside in ("127.0.0.1:8001", "localhost", "[::1]:8001", "gateway.internal:443", ""):
        assert r.host_route(outside) is None
    with pytest.raises(NotFound, match="no InferenceService for host 'irs.a.example.com'"):
        r.host_route("irs.a.example.com")
    with pytest.raises(NotFound, match="InferenceGraph: graphs answer over REST only"):
        r.host_route("chain.a.example.com")
