"""The SDK's parts without a server: following a watch across streams, typed errors, what `apply` takes, status
views and the tensors of predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from wharf.client.control import ControlError
from wharf.sdk.client import _outputs, _request
from wharf.sdk.errors import NotReady, typed
from wharf.sdk.following import Seen
from wharf.sdk.sources import prepare
from wharf.sdk.views import resource
from wharf.control.spec import InferenceGraph, InferenceService, SpecError
from wharf.errors import ConfigurationError, InvalidInput, NotFound, RequestTimeout, ServerUnreachable, WharfError
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor

from .sdk_plane import manifest


def doc(name: str, version: int = 1, namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "v": version}


# -- following a watch across streams -------------------------------------------------------------------------------


def test_the_first_stream_is_shown_as_it_comes() -> None:
    seen = Seen()
    seen.opened()
    assert seen.saw("ADDED", doc("a")) == [("ADDED", doc("a"))]
    assert seen.saw("BOOKMARK", {}) == []
    assert seen.saw("MODIFIED", doc("a", 2)) == [("MODIFIED", doc("a", 2))]
    assert seen.saw("ADDED", doc("b")) == [("ADDED", doc("b"))]
    assert seen.saw("DELETED", doc("b")) == [("DELETED", doc("b"))]


def test_a_reopened_stream_shows_only_what_changed_in_between() -> None:
    seen = Seen()
    seen.opened()
    for name in ("same", "changed", "gone"):
        seen.saw("ADDED", doc(name))
    seen.saw("BOOKMARK", {})
    seen.opened()  # meanwhile: `changed` changed, `gone` went, `new` came
    assert seen.saw("ADDED", doc("same")) == []
    assert seen.saw("ADDED", doc("changed", 2)) == [("MODIFIED", doc("changed", 2))]
    assert seen.saw("ADDED", doc("new")) == [("ADDED", doc("new"))]
    assert seen.saw("BOOKMARK", {}) == [("DELETED", doc("gone"))]
    assert seen.saw("MODIFIED", doc("same", 2)) == [("MODIFIED", doc("same", 2))]
    seen.opened()
    assert seen.saw("ADDED", doc("same", 2)) == []
    assert seen.saw("BOOKMARK", {}) == [("DELETED", doc("changed", 2)), ("DELETED", doc("new"))]


def test_resources_are_told_apart_by_namespace_too() -> None:
    seen = Seen()
    seen.opened()
    seen.saw("ADDED", doc("a", namespace="x"))
    seen.saw("BOOKMARK", {})
    seen.opened()
    assert seen.saw("ADDED", doc("a", namespace="y")) == [("ADDED", doc("a", namespace="y"))]
    assert seen.saw("BOOKMARK", {}) == [("DELETED", doc("a", namespace="x"))]


# -- typed errors -----------------------------------------------------------------------------------------------------


def test_answers_become_wharf_errors_carrying_message_and_status() -> None:
    missing = typed(ControlError("InferenceService default/x not found", 404, {"error": "..."}))
    assert isinstance(missing, NotFound) and missing.http_status == 404 and missing.answered
    assert str(missing) == "InferenceService default/x not found"
    refused = typed(ControlError("spec.predictor: required", 400))
    assert isinstance(refused, InvalidInput) and refused.http_status == 400
    conflict = typed(ControlError("the object has been modified", 409))
    assert type(conflict) is WharfError and conflict.http_status == 409  # no type of its own: the status still told
    assert isinstance(typed(ControlError("cannot reach it")), ServerUnreachable)
    assert isinstance(typed(ControlError("no answer", timed_out=True)), RequestTimeout)


def test_a_kubernetes_status_with_field_causes_is_a_spec_error_naming_them() -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'InferenceService.serving.kserve.io "x" is invalid',
        "reason": "Invalid",
        "code": 422,
        "details": {"causes": [{"field": "spec.predictor.minReplicas", "message": "must be at least 0"}]},
    }
    error = typed(ControlError(status["message"], 422, status))
    assert isinstance(error, SpecError) and error.http_status == 422
    assert error.problems == [("spec.predictor.minReplicas", "must be at least 0")]
    assert str(error) == "spec.predictor.minReplicas: must be at least 0"


# -- what apply takes -------------------------------------------------------------------------------------------------


def test_apply_reads_files_from_their_directory_and_text_from_the_working_one(tmp_path: Path) -> None:
    file = tmp_path / "who.yml"
    file.write_text(manifest("who"))
    for given in (file, str(file)):
        prepared = prepare(given)
        assert prepared.base == tmp_path and prepared.text == manifest("who")
        assert [m.name for m in prepared.manifests] == ["who"]
    two = prepare(manifest("a") + "---\n" + manifest("b"))
    assert two.base == Path.cwd() and [m.name for m in two.manifests] == ["a", "b"]
    with pytest.raises(ConfigurationError, match="cannot read"):
        prepare(str(tmp_path / "missing.json"))
    with pytest.raises(SpecError, match="document 2 \\(InferenceService b\\): spec.predictor"):
        prepare(manifest("a") + "---\n" + manifest("b").replace("model:", "modle:"))


# -- status views -----------------------------------------------------------------------------------------------------


def shown(ready: str, message: str = "", generation: int = 1, observed: int = 1) -> dict[str, Any]:
    document = InferenceService.model_validate(yaml.safe_load(manifest("who"))).to_manifest()
    document["metadata"] |= {"generation": generation, "resourceVersion": "7", "uid": "u-1"}
    conditions = [{"type": "Ready", "status": ready, "message": message}]
    document["status"] = {"observedGeneration": observed, "conditions": conditions, "somethingNew": {"x": 1}}
    return document


def test_readiness_is_the_ready_condition_for_the_current_spec() -> None:
    assert resource(shown("True"), InferenceService).ready
    waiting = resource(shown("False", "waiting for a ready replica of who-predictor-00002"), InferenceService)
    assert not waiting.ready and waiting.not_ready_because == "waiting for a ready replica of who-predictor-00002"
    stale = resource(shown("True", generation=2, observed=1), InferenceService)
    assert not stale.ready and "generation 2" in stale.not_ready_because
    assert stale.metadata.resource_version == "7" and stale.metadata.uid == "u-1"
    late = NotReady("InferenceService default/who", 3, waiting)
    assert late.reason == waiting.not_ready_because and late.resource is waiting
    assert str(late) == f"InferenceService default/who was not ready after 3 s: {waiting.not_ready_because}"


def test_an_answer_of_another_kind_or_invalid_is_the_servers_fault() -> None:
    with pytest.raises(WharfError, match="malformed InferenceGraph from the control plane") as wrong:
        resource(shown("True"), InferenceGraph)
    assert wrong.value.answered
    with pytest.raises(WharfError, match="malformed InferenceService"):
        resource({"kind": "InferenceService"}, InferenceService)


# -- tensors ----------------------------------------------------------------------------------------------------------


def test_arrays_in_arrays_out() -> None:
    one = _request(np.arange(6.0).reshape(2, 3))
    assert [(t.name, t.datatype, t.shape) for t in one.inputs] == [("input-0", "FP64", [2, 3])]
    named = _request({"x": [1, 2], "y": np.array([[1.5]], np.float32)})
    assert [(t.name, t.datatype, t.shape) for t in named.inputs] == [("x", "INT64", [2]), ("y", "FP32", [1, 1])]
    given = InferRequest([Tensor("z", np.zeros(1))])
    assert _request(given) is given
    single = _outputs(InferResponse("m", [Tensor("out", np.array([1, 2]))]))
    assert isinstance(single, np.ndarray) and single.tolist() == [1, 2]
    several = _outputs(InferResponse("m", [Tensor("a", np.array([1])), Tensor("b", np.array([2.0]))]))
    assert isinstance(several, dict) and {k: v.tolist() for k, v in several.items()} == {"a": [1], "b": [2.0]}
