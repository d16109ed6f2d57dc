"""TrainedModel: its spec, the multi-model parent, admission, status, registrations and placement (no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.cli.tables import columns, multi_model_table
from wharf.control.backends.local import serve_command
from wharf.control.backends.replica import ReplicaSpec
from wharf.control.model_placement import ReplicaIndex, place
from wharf.control.plan import service_plan
from wharf.control.spec import SpecError, parse_manifest, parse_manifests
from wharf.control.store import Resource
from wharf.control.trained_models import (
    Parent,
    _Rates,
    admission,
    admitted,
    parent_of,
    registration,
    replica_changes,
    trained_model_status,
)


def tm(name: str = "m1", parent: str = "mms", **model: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": name},
        "spec": {
            "inferenceService": parent,
            "model": {"storageUri": "/models/m1", "framework": "sklearn", "memory": "64Mi", **model},
        },
    }


def mms(predictor: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mms"},
        "spec": {"predictor": predictor or {"sklearn": {"resources": {"limits": {"memory": "512Mi"}}}}},
    }


def problems(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_manifest(document)
    return dict(caught.value.problems)


# -- the spec -----------------------------------------------------------------------------------------------------
def test_kserves_trained_model_applies_unchanged() -> None:
    [model] = parse_manifests(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata: {name: model1-sklearn}\nspec:\n"
        "  inferenceService: sklearn-iris-example\n  model:\n    storageUri: gs://kfserving-examples/models/sklearn\n"
        "    framework: SKLearn\n    memory: 256Mi\n"
    )
    manifest = model.to_manifest()
    assert manifest["spec"] == {
        "inferenceService": "sklearn-iris-example",
        "model": {"storageUri": "gs://kfserving-examples/models/sklearn", "framework": "sklearn", "memory": "256Mi"},
    }


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        ({**tm(), "spec": {**tm()["spec"], "replicas": 2}}, "spec.replicas", "unknown field"),
        (tm(shards="x"), "spec.model.shards", "unknown field"),
        ({**tm(), "spec": {"model": tm()["spec"]["model"]}}, "spec.inferenceService", "required"),
        (tm(framework="triton"), "spec.model.framework", "unknown framework 'triton'"),
        (tm(memory="lots"), "spec.model.memory", "not a quantity"),
        (tm(memory="0"), "spec.model.memory", "more than 0"),
        (tm(storageUri="hf://org/m"), "spec.model.storageUri", "unsupported storage scheme"),
        (tm(parent="Not_A_Name"), "spec.inferenceService", "an InferenceService's name"),
    ],
)
def test_a_wrong_trained_model_is_refused_naming_the_field(document: dict[str, Any], path: str, words: str) -> None:
    assert words in problems(document)[path]


def test_every_model_field_is_required_as_in_kserves_crd() -> None:
    document = tm()
    del document["spec"]["model"]["memory"]
    assert "required" in problems(document)["spec.model.memory"]


def test_a_relative_storage_uri_is_read_from_the_manifest_directory(tmp_path: Path) -> None:
    text = "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata: {name: m}\nspec:\n"
    text += "  inferenceService: mms\n  model: {storageUri: ./m1, framework: sklearn, memory: 1Mi}\n"
    [model] = parse_manifests(text, base=tmp_path)
    assert model.to_manifest()["spec"]["model"]["storageUri"] == str(tmp_path / "m1")


# -- the multi-model parent ---------------------------------------------------------------------------------------
def test_a_predictor_without_storage_uri_is_a_multi_model_server_budgeted_by_its_memory_limit() -> None:
    service = parse_manifest(mms())
    model = service.spec.predictor.model_spec()
    assert model.is_multi_model
    replica = service_plan(service.to_manifest(), "example.com").components["predictor"].replica
    assert (replica["model_uri"], replica["runtime"]) == ("", None)
    assert replica["env"]["WHARF_MEMORY_BUDGET"] == str(384 * 2**20)  # 3/4 of the limit: the rest is the server's
    given = mms(
        {
            "sklearn": {
                "resources": {"limits": {"memory": "1Gi"}},
                "env": [{"name": "WHARF_MEMORY_BUDGET", "value": "6Mi"}],
            }
        }
    )
    assert parse_manifest(given).spec.predictor.model_spec().is_multi_model
    assert service_plan(parse_manifest(given).to_manifest(), "d").components["predictor"].replica["env"][
        "WHARF_MEMORY_BUDGET"
    ] == str(6 * 2**20)
    assert "required" in problems(mms({"huggingface": {}}))["spec.predictor.storageUri"]  # never multi-model


def test_a_multi_model_replica_serves_an_empty_repository(tmp_path: Path) -> None:
    command = serve_command(ReplicaSpec("r", "mms", ""), tmp_path)
    assert "--name" not in command and command[-2:] == ["--", str(tmp_path)]


def resource(manifest: dict[str, Any], status: dict[str, Any] | None = None) -> Resource:
    name = manifest["metadata"]["name"]
    return Resource(manifest["kind"], "default", name, manifest, 1, status or {}, 0.0, 0.0)


READY_STATUS = {
    "url": "http://mms.default.example.com",
    "conditions": [{"type": "Ready", "status": "True"}],
    "components": {
        "predictor": {
            "traffic": [
                {"revisionName": "mms-predictor-00002", "percent": 10},
                {"revisionName": "mms-predictor-00001", "percent": 90},
            ]
        }
    },
}


def test_the_parents_facts_come_from_its_manifest_and_status() -> None:
    parent = parent_of("default", "mms", resource(parse_manifest(mms()).to_manifest(), READY_STATUS))
    assert parent == Parent(
        "default",
        "mms",
        exists=True,
        ready=True,
        multi_model=True,
        framework="sklearn",
        budget_bytes=384 * 2**20,
        url="http://mms.default.example.com",
        revisions=("mms-predictor-00002", "mms-predictor-00001"),  # a canary's and the stable one's
    )
    single = mms({"sklearn": {"storageUri": "/models/iris.joblib"}})
    assert not parent_of("default", "mms", resource(parse_manifest(single).to_manifest())).multi_model
    assert parent_of("default", "gone", None) == Parent("default", "gone")


PARENT = Parent("default", "mms", True, True, True, "sklearn", 512 * 2**20, "http://mms.default.example.com")


@pytest.mark.parametrize(
    ("parent", "model", "failing", "reason"),
    [
        (Parent("default", "mms"), {}, "IsMMSPredictor", "InferenceServiceNotFound"),
        (Parent("default", "mms", True, True, False, "sklearn"), {}, "IsMMSPredictor", "IsNotMMSPredictor"),
        (PARENT, {"framework": "xgboost"}, "IsMMSPredictor", "FrameworkNotSupported"),
        (PARENT, {"memory": "1Gi"}, "MemoryResourceAvailable", "MemoryResourceNotAvailable"),
    ],
)
def test_a_trained_model_that_cannot_be_served_is_not_admitted_and_says_why(
    parent: Parent, model: dict[str, Any], failing: str, reason: str
) -> None:
    verdict = admission(tm(**model)["spec"], parent)
    assert not admitted(verdict)
    holds, found, message = verdict[failing]
    assert (holds, found) == (False, reason) and message
    status = trained_model_status({}, "m1", parent, verdict, [], [], None, now=0)
    ready = status["conditions"][-1]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", reason)


def test_an_admitted_model_is_ready_once_registered_and_its_url_is_the_parents() -> None:
    verdict = admission(tm()["spec"], PARENT)
    assert admitted(verdict)
    waiting = trained_model_status({}, "m1", PARENT, verdict, [], [], None, now=0)
    assert waiting["conditions"][-1]["reason"] == "NotRegistered"
    status = trained_model_status(waiting, "m1", PARENT, verdict, ["r1", "r2"], ["r2"], None, now=100)
    assert [c["type"] for c in status["conditions"]] == [
        "InferenceServiceReady",
        "IsMMSPredictor",
        "MemoryResourceAvailable",
        "Ready",
    ]
    assert all(c["status"] == "True" for c in status["conditions"])
    assert status["url"] == status["address"]["url"] == "http://mms.default.example.com/v1/models/m1"
    assert status["loadedOn"] == ["r2"]
    kept = status["conditions"][0]["lastTransitionTime"]
    assert kept == waiting["conditions"][0]["lastTransitionTime"]  # its status did not change
    failed = trained_model_status(status, "m1", PARENT, verdict, [], [], "r1: no such file", now=200)
    assert (failed["conditions"][-1]["reason"], failed["conditions"][-1]["message"]) == (
        "ModelLoadFailed",
        "r1: no such file",
    )


def test_a_v2_parents_models_answer_under_v2() -> None:
    parent = Parent("default", "mms", True, True, True, "sklearn", None, "http://mms.default.example.com", "v2")
    status = trained_model_status({}, "m1", parent, admission(tm()["spec"], parent), ["r"], [], None)
    assert status["url"] == "http://mms.default.example.com/v2/models/m1"


# -- registrations ------------------------------------------------------------------------------------------------
def test_a_replica_gets_what_it_lacks_and_loses_what_was_deleted() -> None:
    wanted = {"a": tm("a")["spec"], "b": tm("b", storageUri="/models/b2")["spec"], "c": tm("c")["spec"]}
    index = {"a": {"storage_uri": "/models/m1"}, "b": {"storage_uri": "/models/b1"}, "gone": {}}
    changes = replica_changes(index, wanted)
    assert changes[0] == ("unload", "gone", None)
    assert {(verb, name) for verb, name, _ in changes[1:]} == {("load", "b"), ("load", "c")}  # b moved
    assert registration(wanted["c"]) == {
        "parameters": {"storage_uri": "/models/m1", "model_format": "sklearn", "memory": "64Mi", "lazy": True}
    }
    assert len(replica_changes({}, {str(i): tm()["spec"] for i in range(10)}, limit=4)) == 4


def test_request_rates_follow_the_growth_of_the_replicas_counters() -> None:
    rates = _Rates()
    rates.observe({"r1": {"a": {"requests": 10}}, "r2": {"a": {"requests": 5}, "b": {"requests": 1}}}, now=0.0)
    assert rates.rates == {}
    rates.observe({"r1": {"a": {"requests": 30}}, "r2": {"a": {"requests": 25}, "b": {"requests": 1}}}, now=1.0)
    assert rates.rates == {"a": 20.0}  # 40 a second, smoothed from 0
    rates.observe({"r1": {"a": {"requests": 30}}}, now=2.0)  # r2 went: nothing counted twice or negative
    assert rates.rates == {"a": 10.0}


# -- placement ----------------------------------------------------------------------------------------------------
def replicas(**states: dict[str, str]) -> list[ReplicaIndex]:
    return [ReplicaIndex(rid, s) for rid, s in states.items()]


def test_a_loaded_model_goes_where_it_is_loaded() -> None:
    found = place(["a"], replicas(r1={"a": "REGISTERED"}, r2={"a": "READY"}), {"a": 5.0})
    assert found == {"a": ("r2",)}


def test_a_model_loaded_nowhere_goes_to_the_replica_with_fewest_models() -> None:
    registered = {m: "REGISTERED" for m in "abc"}
    found = place("abc", replicas(r1={"x": "READY", **registered}, r2=registered), {})
    assert found["a"] == ("r2",)  # r1 holds x already
    assert sorted(found[m][0] for m in "bc") == ["r1", "r2"]  # then they are even: one each


def test_a_rare_model_keeps_one_copy_a_hot_one_gets_another() -> None:
    indexes = replicas(
        r1={"rare": "READY", "hot": "READY", "warm": "READY"},
        r2={"rare": "READY", "hot": "REGISTERED", "warm": "READY"},
    )
    found = place(["rare", "hot", "warm"], indexes, {"rare": 0.1, "hot": 500.0, "warm": 50.0})
    assert found == {"rare": ("r1",), "hot": ("r1", "r2"), "warm": ("r1", "r2")}


def test_failed_or_unregistered_replicas_are_no_candidates() -> None:
    indexes = replicas(r1={"a": "FAILED"}, r2={})
    assert place(["a"], indexes, {}) == {}


# -- tables -------------------------------------------------------------------------------------------------------
def test_the_trained_model_table_and_the_replicas_summary() -> None:
    item = parse_manifest(tm()).to_manifest() | {"status": {"loadedOn": ["r1", "r2"], "conditions": []}}
    header = [name for name, _ in columns("TrainedModel", wide=False, namespaces=False)]
    assert header == ["NAME", "ISVC", "FRAMEWORK", "READY", "LOADED ON", "URL", "AGE"]
    assert dict((name, cell(item)) for name, cell in columns("TrainedModel", False, False))["LOADED ON"] == "r1,r2"
    summary = {
        "replicas": {
            "r1": {"revision": "mms-1", "loaded": ["m1"], "registered": 3, "usedBytes": 2**20, "budgetBytes": 2**29,
                   "loads": 4, "evictions": 1, "hitRatio": 0.75, "loadLatencyMs": 12.5},
        }
    }  # fmt: skip
    shown = multi_model_table(summary, "m1")
    assert (
        "1.0Mi / 512.0Mi" in shown
        and "75.0%" in shown
        and "12.5 ms" in shown
        and shown.splitlines()[-1].endswith("loaded")
    )
    assert multi_model_table(None) == ""
