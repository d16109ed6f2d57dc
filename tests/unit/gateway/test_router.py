"""Routing by host, tag host, path prefix and pinned revision; traffic splits; least-loaded replica choice."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from wharf.errors import InvalidInput, NotFound
from wharf.gateway.router import Router, least_loaded

from .tables import replica, revision, service, table


class Cycle(random.Random):
    """randrange(n) yields 0, 1, 2, ... (mod n): every percent exactly once per hundred draws."""

    def __init__(self) -> None:
        super().__init__(0)
        self.count = 0

    def randrange(self, n: int) -> int:  # type: ignore[override]
        self.count += 1
        return (self.count - 1) % n


def router(*services, **kwargs) -> Router:  # type: ignore[no-untyped-def]
    return Router(table(*services, **kwargs), random.Random(7))


def test_host_routes_ignore_port_and_case() -> None:
    iris, other = service("iris"), service("iris", namespace="prod", traffic=(("prod-1", 100),))
    r = router(iris, other)
    assert r.route("iris.default.example.com", "/v2/models/iris/infer").service is iris
    assert r.route("IRIS.Prod.example.com:8080", "/v2").service is other
    route = r.route("iris.default.example.com:80", "/v2/models/iris/infer")
    assert (route.tag_revision, route.path) == (None, "/v2/models/iris/infer")


def test_custom_domain() -> None:
    r = router(service("iris"), domain="models.internal")
    assert r.route("iris.default.models.internal", "/").service.name == "iris"
    with pytest.raises(NotFound):
        r.route("iris.default.example.com", "/")


def test_tag_hosts_pin_their_revision() -> None:
    iris = service(traffic=(("iris-2", 100),), tags={"latest": "iris-2", "prev": "iris-1"})
    r = router(iris)
    route = r.route("prev-iris.default.example.com", "/v2")
    assert (route.service, route.tag_revision) == (iris, "iris-1")
    assert r.revision(route.service, route.tag_revision).name == "iris-1"
    assert r.route("latest-iris.default.example.com", "/").tag_revision == "iris-2"


def test_a_service_host_wins_over_a_tag_host_spelled_the_same() -> None:
    tagged = service("model", tags={"prev": "iris-1"})
    named = service("prev-model", traffic=(("other-1", 100),))
    assert router(tagged, named).route("prev-model.default.example.com", "/").service is named


def test_path_prefix_routes_and_forwards_the_rest() -> None:
    iris = service("iris", namespace="team")
    r = router(iris)
    route = r.route("127.0.0.1:8080", "/serving/team/iris/v2/models/iris/infer")
    assert (route.service, route.path) == (iris, "/v2/models/iris/infer")
    assert r.route("anything", "/serving/team/iris").path == "/"
    assert r.route("anything", "/serving/team/iris/").path == "/"


def test_unknown_host_or_path_is_not_found() -> None:
    r = router(service("iris"))
    with pytest.raises(NotFound, match="no InferenceService for host 'other.default.example.com'"):
        r.route("other.default.example.com", "/v2")
    with pytest.raises(NotFound):
        r.route("", "/serving/default/other/v2")
    assert NotFound("x").http_status == 404


def test_pinned_revision_must_belong_to_the_service() -> None:
    iris = service(traffic=(("iris-1", 50), ("iris-2", 50)))
    r = router(iris, service("other", traffic=(("other-1", 100),)))
    assert r.revision(iris, "iris-2").name == "iris-2"
    with pytest.raises(NotFound, match="has no revision 'other-1'"):
        r.revision(iris, "other-1")


def test_split_follows_the_percentages_exactly() -> None:
    iris = service(traffic=(("iris-1", 70), ("iris-2", 30), ("iris-3", 0)))
    r = Router(table(iris), Cycle())
    counts = Counter(r.revision(iris).name for _ in range(400))
    assert counts == {"iris-1": 280, "iris-2": 120}


def test_split_with_a_seeded_generator_is_reproducible_and_close() -> None:
    iris = service(traffic=(("iris-1", 70), ("iris-2", 30)))

    def draw() -> Counter[str]:
        r = Router(table(iris), random.Random(42))
        return Counter(r.revision(iris).name for _ in range(10_000))

    first = draw()
    assert first == draw()
    assert 6850 <= first["iris-1"] <= 7150


def test_a_single_revision_draws_nothing() -> None:
    rng = Cycle()
    iris = service()
    r = Router(table(iris), rng)
    assert r.revision(iris).name == "iris-1"
    assert rng.count == 0


def test_shadow_share() -> None:
    iris = service(shadow=("iris-shadow", 25))
    r = Router(table(iris), Cycle())
    mirrored = [r.shadow(iris) for _ in range(100)]
    assert sum(m is not None for m in mirrored) == 25
    assert {m.name for m in mirrored if m} == {"iris-shadow"}
    assert router(service()).shadow(service()) is None


def test_services_by_key_and_by_model() -> None:
    iris, echo = service("iris"), service("echo", namespace="test", traffic=(("echo-1", 100),), model="echo-model")
    r = router(iris, echo)
    assert r.service("test/echo") is echo
    assert r.service_of_model("echo-model") is echo
    with pytest.raises(NotFound, match="no InferenceService 'test/iris'"):
        r.service("test/iris")
    with pytest.raises(NotFound, match="no InferenceService serves model 'echo'"):
        r.service_of_model("echo")


def test_a_model_served_twice_needs_the_service_named() -> None:
    r = router(service("a", traffic=(("a-1", 100),), model="m"), service("b", traffic=(("b-1", 100),), model="m"))
    with pytest.raises(InvalidInput, match="several InferenceServices"):
        r.service_of_model("m")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(traffic=(("iris-1", 60), ("iris-2", 30))), "sum to 100"),
        (dict(traffic=(("iris-1", 150), ("iris-2", -50))), "sum to 100"),
        (dict(shadow=("iris-1", 101)), "0..100"),
    ],
)
def test_invalid_splits_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        router(service(**bad))


def test_unknown_names_are_refused() -> None:
    iris = service()
    for changed in (
        iris.__class__(**{**_fields(iris), "traffic": (("nope", 100),)}),
        iris.__class__(**{**_fields(iris), "tags": {"latest": "nope"}}),
        iris.__class__(**{**_fields(iris), "shadow": ("nope", 10)}),
    ):
        with pytest.raises(ValueError, match="unknown revision 'nope'"):
            router(changed)
    with pytest.raises(ValueError, match="filed under"):
        router(iris.__class__(**{**_fields(iris), "revisions": {"other": revision("iris-1")}}))
    with pytest.raises(ValueError, match="appears twice"):
        router(iris, iris)
    with pytest.raises(ValueError, match="used by another service"):
        router(iris, service("copy"))


def _fields(s) -> dict:  # type: ignore[no-untyped-def]
    return {f: getattr(s, f) for f in s.__dataclass_fields__}


def test_least_loaded_takes_the_ready_replica_with_fewest_in_flight() -> None:
    a, b, c, down = replica("a"), replica("b"), replica("c"), replica("down", ready=False)
    rng = random.Random(1)
    assert least_loaded((a, b, c, down), {"a": 3, "b": 1, "c": 2}, rng) is b
    assert least_loaded((a, b, down), {"a": 1, "b": 1, "down": 0}, rng) in (a, b)
    assert least_loaded((a, b, c), {"b": 0, "a": 0, "c": 5}, rng, skip={"a"}) is b
    assert least_loaded((down,), {}, rng) is None
    assert least_loaded((a,), {}, rng, skip={"a"}) is None


def test_least_loaded_breaks_ties_at_random() -> None:
    replicas = tuple(replica(name) for name in "abcd")
    rng = random.Random(3)
    picks = Counter(least_loaded(replicas, {"d": 1}, rng).id for _ in range(3000))  # type: ignore[union-attr]
    assert set(picks) == {"a", "b", "c"}
    assert all(900 <= n <= 1100 for n in picks.values())


def test_a_predictor_behind_a_transformer_is_reached_by_its_host_and_key_not_by_its_model() -> None:
    front = service("reviews", traffic=(("reviews-transformer-1", 100),))
    behind = dataclasses.replace(
        service("reviews-predictor", model="reviews", traffic=(("reviews-predictor-1", 100),)), front=False
    )
    router = Router(table(front, behind), random.Random(0))
    assert router.service_of_model("reviews") is front
    assert router.route("reviews-predictor.default.example.com", "/v2/models/reviews/infer").service is behind
    assert router.service("default/reviews-predictor") is behind


def test_explain_requests_go_to_the_services_explainer() -> None:
    explainer = service("iris-explainer", traffic=(("iris-explainer-1", 100),), model="iris-explainer")
    iris = dataclasses.replace(
        service(tags={"latest": "iris-1"}), explainer="default/iris-explainer", aliases=("iris-predictor",)
    )
    r = router(iris, explainer)
    for path in ("/v1/models/iris:explain", "/v2/models/iris/explain", "/v2/models/iris/versions/2/explain"):
        assert r.route("iris.default.example.com", path).service is explainer
        assert r.route("x", f"/serving/default/iris{path}").service is explainer
    tagged = r.route("latest-iris.default.example.com", "/v1/models/iris:explain")
    assert (tagged.service, tagged.tag_revision) == (explainer, None)  # a tag of the service pins no explainer revision
    assert r.route("iris.default.example.com", "/v1/models/iris:predict").service is iris
    assert r.route("iris.default.example.com", "/v2/models/iris/infer").service is iris
    # Without an explainer, explain requests go where the others go (a model may explain itself, else 501).
    alone = router(service())
    assert alone.route("iris.default.example.com", "/v1/models/iris:explain").service.name == "iris"
