"""wharf.export.kserve: InferenceServices and InferenceGraphs as the control API shows them, exported for KServe:
server-kept metadata and status gone, Wharf's annotations dropped with a warning each, the predictor on Wharf's
runtime (a gRPC one with its h2c port), local model paths and az:// warned about, and what KServe cannot run
(custom Python classes, the SHAP explainer, a Bandit router) refused, naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wharf.control.spec import API_KEY_SHA256, AUTO_ROLLBACK_P99_MS, SHADOW_PERCENT
from wharf.control.spec.common import BANDIT_CONFIDENCE, BANDIT_MIN_REWARDS, ROLLOUT
from wharf.export import kserve, runtime
from wharf.export.kserve import NotExportable

SERVER_METADATA = {"uid": "u-1", "resourceVersion": "7", "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z"}


def service(name: str = "iris", predictor: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """An InferenceService as `wharf get -o yaml` shows it: server metadata and status included."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default", **SERVER_METADATA},
        "spec": {"predictor": predictor or {"sklearn": {"storageUri": "s3://models/iris/model.joblib"}}, **spec},
        "status": {"url": f"http://{name}.default.example.com", "conditions": [{"type": "Ready", "status": "True"}]},
    }


#: An InferenceService using most of what KServe and Wharf share, and each of Wharf's annotations.
RICH_SERVICE = service(
    "fraud",
    predictor={
        "minReplicas": 0,
        "maxReplicas": 4,
        "scaleTarget": 10,
        "scaleMetric": "rps",
        "containerConcurrency": 8,
        "timeout": 30,
        "canaryTrafficPercent": 20,
        "nodeSelector": {"pool": "cpu"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "models",
        "labels": {"tier": "gold"},
        "logger": {"mode": "request", "url": "http://sink.default/events", "metadataHeaders": ["x-user"]},
        "batcher": {"maxBatchSize": 16, "maxLatency": 50},
        "model": {
            "modelFormat": {"name": "xgboost", "version": "2"},
            "storageUri": "gs://models/fraud",
            "protocolVersion": "grpc-v2",
            "runtime": "kserve-xgbserver",
            "args": ["--max-batch-size", "16"],
            "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}},
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"runAsNonRoot": True},
        },
    },
    transformer={
        "minReplicas": 1,
        "containers": [
            {"name": "kserve-container", "image": "example.com/fraud-features:1", "args": ["--feature-store", "redis"]}
        ],
    },
    explainer={"art": {"type": "SquareAttack", "config": {"nb_classes": "2"}}},
)
RICH_SERVICE["metadata"] |= {
    "labels": {"team": "risk"},
    "annotations": {
        "autoscaling.knative.dev/window": "30s",
        SHADOW_PERCENT: "10",
        AUTO_ROLLBACK_P99_MS: "250",
        API_KEY_SHA256: "0" * 64,
    },
}


def graph(nodes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "pipeline", "namespace": "default", **SERVER_METADATA},
        "spec": {"nodes": nodes, **spec},
        "status": {"url": "http://pipeline.default.example.com"},
    }


#: An InferenceGraph with each of KServe's routers, and pod settings KServe's graph does and does not take.
RICH_GRAPH = graph(
    {
        "root": {
            "routerType": "Sequence",
            "steps": [
                {"serviceName": "iris", "name": "first"},
                {"nodeName": "split", "data": "$response", "condition": "predictions.#(>0)"},
            ],
        },
        "split": {
            "routerType": "Splitter",
            "steps": [{"serviceName": "iris", "weight": 80}, {"nodeName": "pick", "weight": 20}],
        },
        "pick": {
            "routerType": "Switch",
            "steps": [{"serviceName": "fraud", "condition": "instances.#(>1)"}, {"nodeName": "all", "condition": "a"}],
        },
        "all": {
            "routerType": "Ensemble",
            "steps": [{"serviceName": "iris", "name": "a"}, {"serviceUrl": "http://scorer.example.com/v1/models/s"}],
        },
    },
    minReplicas=1,
    maxReplicas=3,
    timeout=20,
    nodeSelector={"pool": "cpu"},
    serviceAccountName="graphs",
    priorityClassName="high",
    schedulerName="custom",
)


def export_one(document: dict[str, Any], **runtime_options: Any) -> tuple[runtime.ServingRuntime, kserve.Exported]:
    serving, [exported] = kserve.services([document], **runtime_options)
    return serving, exported


def test_a_service_keeps_its_spec_and_loses_what_the_server_keeps() -> None:
    serving, exported = export_one(service())
    manifest = exported.manifest
    assert list(manifest) == ["apiVersion", "kind", "metadata", "spec"]  # no status
    assert manifest["metadata"] == {"name": "iris", "namespace": "default"}
    assert manifest["spec"]["predictor"]["model"] == {
        "modelFormat": {"name": "sklearn"},  # the shorthand, as `model`
        "storageUri": "s3://models/iris/model.joblib",
        "protocolVersion": "v1",
        "runtime": "wharf-sklearn",
    }
    assert manifest["spec"]["predictor"]["minReplicas"] == 1  # defaults are written out: the same on KServe
    assert serving.name == "wharf-sklearn" and exported.warnings == ()


def test_every_field_kserve_shares_goes_over_unchanged() -> None:
    _, exported = export_one(RICH_SERVICE)
    spec, sent = exported.manifest["spec"], RICH_SERVICE["spec"]
    for field, value in sent["predictor"].items():
        if field != "model":
            expected = {**value, "timeout": 60} if field == "batcher" else value  # the batcher's default timeout
            assert spec["predictor"][field] == expected, field
    model = spec["predictor"]["model"]
    for field, value in sent["predictor"]["model"].items():
        if field != "runtime":
            assert model[field] == value, field
    assert spec["transformer"]["containers"] == sent["transformer"]["containers"]
    assert spec["explainer"]["art"] == sent["explainer"]["art"]
    assert exported.manifest["metadata"]["labels"] == {"team": "risk"}


def test_wharfs_annotations_are_dropped_each_with_its_reason_and_others_kept() -> None:
    _, exported = export_one(RICH_SERVICE)
    assert exported.manifest["metadata"]["annotations"] == {"autoscaling.knative.dev/window": "30s"}
    dropped = [w for w in exported.warnings if "metadata.annotations" in w]
    assert len(dropped) == 3
    assert any(SHADOW_PERCENT in w and "copy" in w for w in dropped)
    assert any(AUTO_ROLLBACK_P99_MS in w and "canaryTrafficPercent" in w for w in dropped)
    assert any(API_KEY_SHA256 in w and "authentication" in w for w in dropped)


def test_the_bandit_rollouts_annotations_are_dropped_saying_kserve_has_no_such_rollout() -> None:
    bandit = service()
    bandit["metadata"]["annotations"] = {ROLLOUT: "bandit", BANDIT_CONFIDENCE: "0.9", BANDIT_MIN_REWARDS: "5"}
    _, exported = export_one(bandit)
    assert "annotations" not in exported.manifest["metadata"]
    assert [w.partition(" dropped: ")[2] for w in exported.warnings] == [
        "KServe moves a canary's traffic by canaryTrafficPercent only, with no rollout that learns from rewards"
    ] * 3


def test_the_predictor_runs_on_wharfs_runtime_replacing_a_kserve_one_with_a_warning() -> None:
    serving, exported = export_one(RICH_SERVICE)
    model = exported.manifest["spec"]["predictor"]["model"]
    assert model["runtime"] == serving.name == "wharf-xgboost"
    assert "spec.predictor.model.runtime: kserve-xgbserver replaced by wharf-xgboost (Wharf's model server)" in (
        exported.warnings
    )


def test_a_grpc_predictor_gets_the_h2c_port_kserve_asks_for() -> None:
    _, exported = export_one(RICH_SERVICE)
    ports = exported.manifest["spec"]["predictor"]["model"]["ports"]
    assert ports == [{"name": "h2c", "containerPort": runtime.GRPC_PORT, "protocol": "TCP"}]
    _, plain = export_one(service())
    assert "ports" not in plain.manifest["spec"]["predictor"]["model"]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("/srv/models/iris.joblib", "a path on this machine"),
        ("file:///srv/models/iris.joblib", "a path on this machine"),
        ("az://models/iris.joblib", "https://ACCOUNT.blob.core.windows.net"),
    ],
)
def test_a_model_the_cluster_cannot_read_is_exported_with_a_warning(uri: str, says: str) -> None:
    _, exported = export_one(service(predictor={"sklearn": {"storageUri": uri}}))
    assert exported.manifest["spec"]["predictor"]["model"]["storageUri"] == uri
    [warning] = exported.warnings
    assert warning.startswith("spec.predictor.model.storageUri: ") and says in warning


def test_a_payload_logger_on_this_machine_is_warned_about() -> None:
    logged = service(predictor={"sklearn": {"storageUri": "s3://m/i"}, "logger": {"url": "http://localhost:9000/e"}})
    assert export_one(logged)[1].warnings == (
        "spec.predictor.logger.url: http://localhost:9000/e is on this machine, which the cluster cannot reach",
    )


@pytest.mark.parametrize("uri", ["s3://m/iris.joblib", "gs://m/iris", "https://example.com/iris.joblib", "pvc://m/x"])
def test_a_model_in_storage_the_cluster_reads_needs_no_warning(uri: str) -> None:
    assert export_one(service(predictor={"sklearn": {"storageUri": uri}}))[1].warnings == ()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (service(predictor={"model": {"modelFormat": {"name": "custom"}, "storageUri": "fraud.models:Fraud"}}),
         "spec.predictor.model"),
        (service(transformer={"model": {"modelFormat": {"name": "custom"}, "storageUri": "features:Transformer"}}),
         "spec.transformer.model"),
        (service(explainer={"shap": {"type": "Kernel", "storageUri": "s3://m/background.csv"}}), "spec.explainer.shap"),
        (service(predictor={"model": {"modelFormat": {"name": "sklearn"}}}), "spec.predictor.model"),  # multi-model
    ],
)  # fmt: skip
def test_what_kserve_cannot_run_is_refused_naming_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(NotExportable, match=f"^inferenceservice/iris: {field}: "):
        kserve.services([document])


def test_several_services_share_one_runtime_serving_their_formats_and_versions() -> None:
    xgb = service(
        "fraud", predictor={"model": {"modelFormat": {"name": "xgboost", "version": "2"}, "storageUri": "s3://m/x"}}
    )
    serving, exported = kserve.services([service(), xgb])
    assert serving.name == "wharf-sklearn-xgboost" and serving.formats == (("sklearn", None), ("xgboost", "2"))
    assert [e.manifest["spec"]["predictor"]["model"]["runtime"] for e in exported] == [serving.name] * 2


def test_every_refusal_of_every_service_is_named_before_anything_is_exported() -> None:
    shap = service("a", explainer={"shap": {"type": "Kernel", "storageUri": "s3://m/background.csv"}})
    custom = service("b", predictor={"model": {"modelFormat": {"name": "custom"}, "storageUri": "m:Model"}})
    with pytest.raises(NotExportable) as refused:
        kserve.services([service(), shap, custom])
    assert refused.value.message.splitlines() == [
        "inferenceservice/a: spec.explainer.shap: Wharf's SHAP explainer has no KServe equivalent; explain with a"
        " container of your own (spec.explainer.containers), or export the service without its explainer",
        "inferenceservice/b: spec.predictor.model: a custom Python class (m:Model) runs on KServe in an image of your"
        " own: build one that serves it (`wharf serve m:Model`) and give it as the predictor's containers",
    ]


def test_the_runtime_can_be_named_and_its_image_given() -> None:
    serving, exported = export_one(service(), runtime_name="fast", image="registry.example.com/wharf:1")
    assert (serving.name, serving.image) == ("fast", "registry.example.com/wharf:1")
    assert exported.manifest["spec"]["predictor"]["model"]["runtime"] == "fast"


def test_the_document_given_is_not_changed() -> None:
    given = copy.deepcopy(RICH_SERVICE)
    kserve.services([given])
    assert given == RICH_SERVICE


def test_a_graph_keeps_its_nodes_and_drops_the_pod_settings_kserves_graph_lacks() -> None:
    exported = kserve.inference_graph(RICH_GRAPH)
    manifest = exported.manifest
    assert list(manifest) == ["apiVersion", "kind", "metadata", "spec"]
    assert manifest["metadata"] == {"name": "pipeline", "namespace": "default"}
    spec = manifest["spec"]
    assert spec["nodes"]["split"]["steps"][0] == {
        "serviceName": "iris", "data": "$request", "weight": 80, "dependency": "Soft", "mapPredictionsToInstances": False
    }  # fmt: skip
    assert (spec["nodeSelector"], spec["serviceAccountName"], spec["timeout"]) == ({"pool": "cpu"}, "graphs", 20)
    assert "priorityClassName" not in spec and "schedulerName" not in spec
    assert exported.warnings == (
        "spec.priorityClassName dropped: KServe's InferenceGraph has no such field",
        "spec.schedulerName dropped: KServe's InferenceGraph has no such field",
    )


def test_a_graph_step_calling_this_machine_is_warned_about() -> None:
    local = graph({"root": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://127.0.0.1:8000/v1/models/a"}]}})
    [warning] = kserve.inference_graph(local).warnings
    assert warning.startswith("spec.nodes.root.steps[0].serviceUrl: http://127.0.0.1:8000/v1/models/a is on this")


def test_a_bandit_router_is_refused() -> None:
    bandit = graph(
        {"root": {"routerType": "Bandit", "policy": "UCB1", "steps": [{"serviceName": "a"}, {"serviceName": "b"}]}}
    )
    with pytest.raises(NotExportable, match=r"^spec\.nodes\.root\.routerType: Bandit is Wharf's router"):
        kserve.inference_graph(bandit)


def test_a_kind_is_exported_only_by_its_own_function() -> None:
    with pytest.raises(NotExportable, match="is not an InferenceService"):
        kserve.services([RICH_GRAPH])
    with pytest.raises(NotExportable, match="is not an InferenceGraph"):
        kserve.inference_graph(service())
