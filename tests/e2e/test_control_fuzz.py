"""The control API of a real `wharf up` under random input: no answer is a 5xx, and it keeps serving."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Daemon, start_daemon

KINDS = st.sampled_from(["InferenceService", "InferenceGraph", "Pod", ""])
VERSIONS = st.sampled_from(["serving.kserve.io/v1beta1", "serving.kserve.io/v1alpha1", "v1", ""])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    [
        "predictor",
        "transformer",
        "explainer",
        "model",
        "modelFormat",
        "storageUri",
        "minReplicas",
        "maxReplicas",
        "canaryTrafficPercent",
        "env",
        "nodes",
        "root",
        "steps",
        "routerType",
        "logger",
        "scaleTarget",
    ]
)
SPECS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=25,
)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Documents shaped like the resources the API takes, with anything inside."""
    document: dict[str, Any] = {"apiVersion": draw(VERSIONS), "kind": draw(KINDS)}
    document["metadata"] = draw(st.one_of(VALUES, st.fixed_dictionaries({"name": st.text(max_size=70)})))
    document["spec"] = draw(SPECS)
    if draw(st.booleans()):
        document[draw(st.text(max_size=8))] = draw(VALUES)
    return document


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    running = start_daemon(tmp_path_factory.mktemp("fuzz") / "home")
    yield running
    assert running.stop() == 0


def _no_server_error(answer: httpx.Response) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert "error" in answer.json(), answer.text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=manifests(), as_json=st.booleans())
def test_random_manifests_answer_4xx_or_apply(fuzzed: Daemon, document: dict[str, Any], as_json: bool) -> None:
    body = json.dumps(document).encode() if as_json else yaml.safe_dump(document).encode()
    content_type = "application/json" if as_json else "application/yaml"
    with fuzzed.control() as control:
        _no_server_error(control.post("/apis/apply", content=body, headers={"content-type": content_type}))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    segments=st.lists(
        st.sampled_from(["apis", "serving.kserve.io", "v1beta1", "namespaces", "default", "inferenceservices", "x"])
        | st.text(alphabet="abc-._~%:", min_size=1, max_size=6),
        max_size=8,
    ),
    body=st.binary(max_size=64),
)
def test_random_calls_answer_4xx(fuzzed: Daemon, method: str, segments: list[str], body: bytes) -> None:
    with fuzzed.control() as control:
        headers = {"content-type": "application/json"} if body else {}
        _no_server_error(control.request(method, "/" + "/".join(segments), content=body, headers=headers))


def test_the_api_still_answers_after_the_fuzzing(fuzzed: Daemon) -> None:
    with fuzzed.control() as control:
        assert control.get("/healthz").status_code == 200
        assert control.get("/apis/serving.kserve.io/v1beta1/inferenceservices").status_code == 200
