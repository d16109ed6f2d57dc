import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from wharf.control.spec import (
    FRAMEWORKS,
    SHADOW_PERCENT,
    InferenceGraph,
    InferenceService,
    RolloutPolicy,
    SpecError,
    component_fingerprint,
    local_warnings,
    parse_manifest,
    parse_manifests,
    parse_quantity,
    revision_template,
)
from wharf.control.spec.ignored import REASONS, ContainerSettings, PodSettings
from wharf.errors import ConfigurationError
from wharf.model.runtimes import RUNTIMES

EXAMPLES = Path(__file__).parents[3] / "examples" / "isvc"
IRIS_URI = "gs://kfserving-examples/models/sklearn/1.0/model"
MODEL = {"modelFormat": {"name": "sklearn"}, "storageUri": IRIS_URI}


def example_text(name: str) -> str:
    return (EXAMPLES / name).read_text()


def example(name: str) -> list[Any]:
    return parse_manifests(example_text(name))


def predictor(model: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"model": {**copy.deepcopy(MODEL), **(model or {})}, **fields}


def isvc(predictor_spec: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris"},
        "spec": {"predictor": predictor() if predictor_spec is None else predictor_spec, **spec},
    }


def graph(**nodes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "g"},
        "spec": {"nodes": nodes},
    }


def node(router_type: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"routerType": router_type, "steps": list(steps)}


def step(**fields: Any) -> dict[str, Any]:
    return {"serviceName": "iris", **fields}


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_manifest(data)
    return dict(caught.value.problems)


# -- KServe's examples -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_parses(path: Path) -> None:
    assert parse_manifests(path.read_text())


def test_sklearn_iris_gets_kserve_defaults() -> None:
    [service] = example("sklearn-iris.yaml")
    assert isinstance(service, InferenceService)
    assert (service.name, service.namespace, service.model_name) == ("sklearn-iris", "default", "sklearn-iris")
    spec = service.spec.predictor
    assert (spec.min_replicas, spec.max_replicas, spec.scale_target, spec.scale_metric) == (1, 0, None, "concurrency")
    assert (spec.container_concurrency, spec.timeout) == (0, 300)
    assert spec.canary_traffic_percent is None and spec.batcher is None and spec.logger is None
    model = spec.model_spec()
    assert (model.model_format.name, model.storage_uri, model.protocol_version) == ("sklearn", IRIS_URI, "v1")
    assert list(service.components()) == ["predictor"]
    assert service.rollout_policy == RolloutPolicy()


def test_a_shorthand_becomes_a_model() -> None:
    [service] = example("xgboost-iris.yaml")
    spec = service.spec.predictor
    assert spec.xgboost is None and spec.model_spec().model_format.name == "xgboost"
    assert "xgboost" not in service.to_manifest()["spec"]["predictor"]
    explicit = isvc({"model": {"modelFormat": {"name": "xgboost"}, "storageUri": spec.model_spec().storage_uri}})
    assert component_fingerprint(parse_manifest(explicit).spec.predictor) == component_fingerprint(spec)


def test_onnx_and_huggingface_shorthands_default_to_v2_as_in_kserve() -> None:
    onnx = parse_manifest(isvc({"onnx": {"storageUri": "/models/m.onnx"}})).spec.predictor.model_spec()
    assert onnx.protocol_version == "v2"
    given = parse_manifest(isvc({"onnx": {"storageUri": "/m.onnx", "protocolVersion": "v1"}})).spec.predictor
    assert given.model_spec().protocol_version == "v1"


def test_every_shorthand_is_a_format_wharf_serves() -> None:
    assert set(FRAMEWORKS) <= set(RUNTIMES)


def test_v2_with_a_kserve_runtime() -> None:
    [service] = example("sklearn-iris-v2.yaml")
    model = service.spec.predictor.model_spec()
    assert (model.protocol_version, model.runtime) == ("v2", "kserve-sklearnserver")


def test_canary() -> None:
    [canary] = example("canary.yaml")
    [stable] = example("sklearn-iris.yaml")
    assert canary.spec.predictor.canary_traffic_percent == 10
    assert component_fingerprint(canary.spec.predictor) != component_fingerprint(stable.spec.predictor)


def test_batcher_values_and_defaults() -> None:
    [service] = example("batcher.yaml")
    batcher = service.spec.predictor.batcher
    assert (batcher.max_batch_size, batcher.max_latency, batcher.timeout) == (32, 500, 60)
    assert service.spec.predictor.timeout == 60
    empty = parse_manifest(isvc(predictor(batcher={}))).spec.predictor.batcher
    assert (empty.max_batch_size, empty.max_latency, empty.timeout) == (32, 5000, 60)


def test_logger() -> None:
    [service] = example("logger.yaml")
    logger = service.spec.predictor.logger
    assert (logger.mode, logger.url) == ("all", "http://message-dumper.default/")
    assert parse_manifest(isvc(predictor(logger={"url": "http://sink/"}))).spec.predictor.logger.mode == "all"


def test_a_logger_without_a_url_is_an_error_about_the_logger() -> None:
    for component in ("predictor", "transformer"):
        manifest = (
            isvc(transformer={"model": {"modelFormat": {"name": "custom"}, "storageUri": "a:B"}}, predictor=predictor())
            if component == "transformer"
            else isvc()
        )
        manifest["spec"][component]["logger"] = {"mode": "request"}
        reason = problems(manifest)[f"spec.{component}.logger.url"]
        assert reason.startswith("required: a local Wharf has no default sink for payload logs")


def test_autoscaling_fields_and_knative_annotations() -> None:
    [service] = example("autoscale.yaml")
    spec = service.spec.predictor
    assert (spec.min_replicas, spec.max_replicas, spec.scale_target, spec.container_concurrency) == (0, 5, 1, 4)
    assert service.metadata.annotations["autoscaling.knative.dev/window"] == "60s"


def test_transformer_as_an_image_and_as_a_python_class() -> None:
    [images] = example("transformer.yaml")
    container = images.spec.transformer.containers[0]
    assert (container.name, container.image) == ("kserve-container", "kserve/image-transformer:latest")
    assert container.args == ["--model_name", "mnist"]
    [custom] = example("custom-transformer.yaml")
    assert list(custom.components()) == ["predictor", "transformer"]
    model = custom.spec.transformer.model
    assert model.is_custom and model.storage_uri == "my_models.features:FeatureTransformer"
    spec = custom.spec.predictor.model_spec()
    assert spec.resources.limits == {"cpu": "2", "memory": "2Gi"}
    assert [(e.name, e.value) for e in spec.env][1] == ("FRAUD_THRESHOLD", "0.8")


def test_wharf_rollout_annotations() -> None:
    [service] = example("rollout.yaml")
    assert service.rollout_policy == RolloutPolicy(20, 0.02, 250.0)
    assert service.rollout_policy.auto_rollback


def test_graph_per_router_type() -> None:
    *services, chainer = example("graph-sequence.yaml")
    assert [s.name for s in services] == ["sklearn-iris", "xgboost-iris"]
    assert isinstance(chainer, InferenceGraph) and chainer.service_names() == {"sklearn-iris", "xgboost-iris"}
    first = chainer.spec.nodes["root"].steps[0]
    assert (first.data, first.dependency, first.weight) == ("$request", "Soft", None)
    [ensemble] = example("graph-ensemble.yaml")
    assert ensemble.spec.nodes["root"].router_type == "Ensemble"
    [splitter] = example("graph-splitter.yaml")
    assert [s.weight for s in splitter.spec.nodes["root"].steps] == [20, 80]
    [switch] = example("graph-switch.yaml")
    root = switch.spec.nodes["root"]
    assert [s.target for s in root.steps] == ["by-client", "http://scorer.example.com/v1/models/scorer:predict"]
    assert switch.spec.nodes["by-client"].steps[0].condition.startswith("[@this]")
    assert (switch.spec.timeout, switch.spec.max_replicas, switch.spec.min_replicas) == (30, 3, 1)


def test_to_manifest_round_trips() -> None:
    for name in ("custom-transformer.yaml", "rollout.yaml", "graph-switch.yaml"):
        [manifest] = example(name)
        assert parse_manifest(manifest.to_manifest()) == manifest


# -- what is refused, and where ----------------------------------------------------------------------------------


def test_predictor_containers_are_refused_with_a_way_out() -> None:
    reason = problems(isvc({"containers": [{"name": "kserve-container", "image": "me/model:1"}]}))
    assert "images cannot run on a local Wharf" in reason["spec.predictor.containers"]
    assert "modelFormat: {name: custom}" in reason["spec.predictor.containers"]


@pytest.mark.parametrize(
    "where, key",
    [
        (("spec", "predictor", "model", "modelFormat"), "nmae"),
        (("spec", "predictor", "model", "resources"), "limit"),
        (("metadata",), "labelz"),
        (("spec",), "tracing"),
        ((), "extra"),
    ],
)
def test_an_unknown_field_at_any_depth_is_named(where: tuple[str, ...], key: str) -> None:
    manifest = isvc()
    target = manifest
    for name in where:
        target = target.setdefault(name, {})
    target[key] = {}
    assert ".".join((*where, key)) in problems(manifest)


def test_an_unknown_field_suggests_the_right_name() -> None:
    found = problems(isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageURI": IRIS_URI}}))
    assert found["spec.predictor.model.storageURI"] == "unknown field; did you mean storageUri?"
    misplaced = problems(isvc({"explainer": {}, "model": {"modelFormat": {"name": "sklearn"}, "storageUri": IRIS_URI}}))
    assert (
        misplaced["spec.predictor.explainer"]
        == "not a field here (it is one elsewhere in the spec: check its indentation)"
    )


def test_wire_names_are_camel_case_only() -> None:
    found = problems(isvc({"model": {"model_format": {"name": "sklearn"}, "storageUri": IRIS_URI}}))
    assert "spec.predictor.model.model_format" in found and found["spec.predictor.model.modelFormat"] == "required"


def test_cpu_scaling_is_refused_saying_why() -> None:
    assert "concurrency or rps" in problems(isvc(predictor(scaleMetric="cpu")))["spec.predictor.scaleMetric"]


def test_replica_bounds() -> None:
    at = "spec.predictor.minReplicas"
    assert problems(isvc(predictor(minReplicas=3, maxReplicas=2))) == {at: "must be <= maxReplicas (2)"}
    assert problems(isvc(predictor(minReplicas=-1))) == {at: "must be >= 0"}
    unbounded = parse_manifest(isvc(predictor(minReplicas=3))).spec.predictor
    assert (unbounded.min_replicas, unbounded.max_replicas) == (3, 0)


def test_exactly_one_way_to_name_the_model() -> None:
    both = problems(isvc({"sklearn": {"storageUri": IRIS_URI}, **predictor()}))
    assert "given: model, sklearn" in both["spec.predictor"]
    assert "none given" in problems(isvc({"minReplicas": 1}))["spec.predictor"]


@pytest.mark.parametrize(
    "model, path, words",
    [
        ({"modelFormat": {"name": "triton"}}, "modelFormat.name", "unknown model format"),
        ({"modelFormat": {"name": "huggingface"}, "storageUri": None}, "storageUri", "required"),  # not multi-model
        ({"storageUri": "hf://org/model"}, "storageUri", "unsupported storage scheme hf://"),
        ({"modelFormat": {"name": "custom"}, "storageUri": "/models/x.py"}, "storageUri", "package.module:ClassName"),
        ({"runtime": "my-runtime"}, "runtime", "ServingRuntime"),
        ({"protocolVersion": "v3"}, "protocolVersion", "'v1', 'v2' or 'grpc-v2'"),
        ({"image": "x"}, "image", "images cannot run"),
        ({"env": [{"name": "A", "valueFrom": {}}]}, "env[0].valueFrom", "secrets"),
        ({"env": [{"name": "1A"}]}, "env[0].name", "not start with a digit"),
        ({"storageUri": "models/a\x00b"}, "storageUri", "must not contain a NUL character"),
        ({"storageUri": "s3:\n//b/../../etc/m.joblib"}, "storageUri", "must not contain a control character ('\\n')"),
        ({"storageUri": "fi\tle:///etc/m.joblib"}, "storageUri", "must not contain a control character ('\\t')"),
        (
            {"storageUri": "FILE:///etc/passwd"},
            "storageUri",
            "write the scheme as file://, in lower case, at the start",
        ),
        ({"storageUri": " file:///etc/passwd"}, "storageUri", "write the scheme as file://"),
        ({"storageUri": "S3://bucket/m.joblib"}, "storageUri", "write the scheme as s3://"),
        ({"storageUri": "s3:bucket/m.joblib"}, "storageUri", "write the scheme as s3://"),
        ({"storageUri": "file::memory://m"}, "storageUri", "write the scheme as file://"),
        ({"storageUri": "models/x::zip://m"}, "storageUri", "a path holds no ://"),
        ({"storageUri": "--workers=3"}, "storageUri", "must not begin with '-' (a file of that name is ./--workers=3)"),
        ({"env": [{"name": "PYTHONPATH", "value": "/a\x00b"}]}, "env[0].value", "must not contain a NUL character"),
    ],
)
def test_model_problems(model: dict[str, Any], path: str, words: str) -> None:
    spec = {k: v for k, v in predictor(model)["model"].items() if v is not None}
    assert words in problems(isvc({"model": spec}))[f"spec.predictor.model.{path}"]


def test_resources() -> None:
    at = "spec.predictor.model.resources."
    requests = {"cpu": 4, "memory": "lots", "amd.com/gpu": 1}
    found = problems(isvc(predictor({"resources": {"requests": requests, "limits": {"nvidia.com/gpu": "0.5"}}})))
    assert "is not a quantity" in found[at + "requests.memory"]
    assert "unknown resource" in found[at + 'requests["amd.com/gpu"]']
    assert found[at + 'limits["nvidia.com/gpu"]'] == "must be a whole number of GPUs"
    too_much = {"requests": {"cpu": 4}, "limits": {"cpu": "2"}}
    assert problems(isvc(predictor({"resources": too_much}))) == {at + "requests.cpu": "must not exceed the limit (2)"}
    quantities = [parse_quantity(q) for q in ("500m", "1Gi", "2e3", "1M")]
    assert quantities == [0.5, 2**30, 2000, 1e6]


def test_transformer_shape() -> None:
    assert "exactly one of containers or model" in problems(isvc(transformer={}))["spec.transformer"]
    assert "must be custom" in problems(isvc(transformer=predictor()))["spec.transformer.model.modelFormat.name"]
    no_image = {"containers": [{"name": "x"}]}
    assert problems(isvc(transformer=no_image)) == {"spec.transformer.containers[0].image": "required"}


@pytest.mark.parametrize(
    "key, value, words",
    [
        (SHADOW_PERCENT, "150", "0 to 100"),
        (SHADOW_PERCENT, "ten", "0 to 100"),
        ("serving.wharf.dev/auto-rollback-error-rate", "5", "0 to 1"),
        ("serving.wharf.dev/auto-rollback-p99-ms", "-1", "positive"),
        ("serving.wharf.dev/auto-rollback-window-s", "30", "not supported: a canary is judged over the gateway's"),
        ("serving.wharf.dev/shadow", "10", "unknown Wharf annotation"),
    ],
)
def test_bad_wharf_annotations_are_named(key: str, value: str, words: str) -> None:
    manifest = isvc()
    manifest["metadata"]["annotations"] = {key: value}
    assert words in problems(manifest)[f'metadata.annotations["{key}"]']


def test_names() -> None:
    manifest = isvc()
    manifest["metadata"] = {"name": "Iris_1", "namespace": "-x"}
    found = problems(manifest)
    assert "start with a letter" in found["metadata.name"] and "DNS-1123" in found["metadata.namespace"]


def test_problems_are_all_reported_in_one_error() -> None:
    error = pytest.raises(SpecError, parse_manifest, isvc(predictor(minReplicas="x", logger={"mode": "some"}))).value
    assert isinstance(error, ConfigurationError) and error.http_status == 400
    assert error.message == (
        "2 problems:\n  spec.predictor.minReplicas: must be an integer\n"
        "  spec.predictor.logger.mode: must be 'all', 'request' or 'response'"
    )


# -- graphs ------------------------------------------------------------------------------------------------------

CYCLE = {"root": node("Sequence", {"nodeName": "a"}), "a": node("Ensemble", {"nodeName": "root"})}


@pytest.mark.parametrize(
    "nodes, path, words",
    [
        ({"first": node("Sequence", step())}, "", "named 'root'"),
        ({"root": node("Sequence", {"nodeName": "gone"})}, ".root.steps[0].nodeName", "no node"),
        ({"root": node("Splitter", step(weight=20), step(weight=70))}, ".root.steps", "sum to 100 (they sum to 90)"),
        ({"root": node("Splitter", step(weight=100), step())}, ".root.steps[1].weight", "required"),
        ({"root": node("Switch", step(condition="a"), step())}, ".root.steps[1].condition", "required"),
        ({"root": node("Sequence", step(weight=50))}, ".root.steps[0].weight", "only Splitter"),
        ({"root": node("Ensemble", step(data="$response"))}, ".root.steps[0].data", "only Sequence"),
        ({"root": node("Sequence", step(serviceUrl="http://x"))}, ".root.steps[0]", "exactly one of"),
        ({"root": node("Sequence", step(name="a"), step(name="a"))}, ".root.steps[1].name", "another step"),
        ({"root": node("Sequence")}, ".root.steps", "at least 1"),
        (
            {"root": node("Chain", step())},
            ".root.routerType",
            "'Sequence', 'Switch', 'Ensemble', 'Splitter' or 'Bandit'",
        ),
        (CYCLE, ".a.steps[0].nodeName", "cycle: root -> a -> root"),
    ],
)
def test_graph_problems(nodes: dict[str, Any], path: str, words: str) -> None:
    assert words in problems(graph(**nodes))[f"spec.nodes{path}"]


def test_graph_ignores_affinity_with_a_warning_and_refuses_volumes_and_wharf_annotations() -> None:
    manifest = graph(root=node("Sequence", step()))
    manifest["spec"]["affinity"] = {"nodeAffinity": {}}
    [warning] = local_warnings(parse_manifest(manifest))
    assert warning.startswith("spec.affinity has no effect on the local backend (it places pods")
    manifest["spec"]["volumes"] = []
    assert "Kubernetes pod setting that a local Wharf cannot honour" in problems(manifest)["spec.volumes"]
    del manifest["spec"]["volumes"]
    manifest["metadata"]["annotations"] = {SHADOW_PERCENT: "10"}
    assert "InferenceServices only" in problems(manifest)[f'metadata.annotations["{SHADOW_PERCENT}"]']


# -- documents ---------------------------------------------------------------------------------------------------


def test_documents_are_named_by_position_and_kind() -> None:
    others = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
        {"apiVersion": "serving.kserve.io/v1alpha2", "kind": "InferenceService", "metadata": {"name": "old"}},
    ]
    text = "\n---\n".join([example_text("sklearn-iris.yaml"), yaml.safe_dump_all(others), example_text("canary.yaml")])
    found = dict(pytest.raises(SpecError, parse_manifests, text).value.problems)
    assert "unknown kind 'Deployment'" in found["document 2 (Deployment web): kind"]
    assert "must be serving.kserve.io/v1beta1" in found["document 3 (InferenceService old): apiVersion"]
    assert "the same InferenceService as document 1" in found["document 4 (InferenceService sklearn-iris)"]


def test_one_document_keeps_plain_paths_and_empty_input_is_an_error() -> None:
    one = "---\n" + yaml.safe_dump(isvc({"minReplicas": 1}))
    assert "spec.predictor" in dict(pytest.raises(SpecError, parse_manifests, one).value.problems)
    assert pytest.raises(SpecError, parse_manifests, "---\n").value.message == "no manifest found"
    assert pytest.raises(SpecError, parse_manifests, "a: [").value.message.startswith("invalid YAML")
    assert pytest.raises(SpecError, parse_manifests, "- 1").value.message.startswith("a manifest must be a mapping")


# -- revisions ---------------------------------------------------------------------------------------------------


def fingerprint(manifest: dict[str, Any]) -> str:
    return component_fingerprint(parse_manifest(manifest).spec.predictor)


def test_fingerprint_ignores_key_order_and_explicit_defaults() -> None:
    reordered = isvc({"model": {"storageUri": IRIS_URI, "modelFormat": {"name": "sklearn"}}})
    defaults = isvc(predictor({"protocolVersion": "v1", "args": []}, timeout=300, containerConcurrency=0))
    assert fingerprint(isvc()) == fingerprint(reordered) == fingerprint(defaults)


def test_fingerprint_changes_with_what_a_replica_runs_only() -> None:
    base = isvc()
    steering = isvc(predictor(canaryTrafficPercent=10, minReplicas=0, maxReplicas=4, scaleTarget=5, scaleMetric="rps"))
    assert fingerprint(steering) == fingerprint(base)
    assert "canaryTrafficPercent" not in revision_template(parse_manifest(steering).spec.predictor)
    for change in ({"storageUri": IRIS_URI + "-2"}, {"env": [{"name": "A", "value": "1"}]}, {"protocolVersion": "v2"}):
        assert fingerprint(isvc(predictor(change))) != fingerprint(base), change
    batched = copy.deepcopy(base)
    batched["spec"]["predictor"]["batcher"] = {}
    assert fingerprint(batched) != fingerprint(base)


# -- fields a local replica ignores, and what the server writes ---------------------------------------------------

POD_FIELDS = {
    "serviceAccountName": "sa",
    "nodeSelector": {"gpu": "a100"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {}},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "high",
    "securityContext": {"runAsNonRoot": True},
    "labels": {"team": "fraud"},
}
CONTAINER_FIELDS = {"imagePullPolicy": "Always", "securityContext": {"readOnlyRootFilesystem": True}}


def test_kubernetes_pod_fields_are_accepted_kept_and_named_in_warnings() -> None:
    manifest = isvc(predictor(CONTAINER_FIELDS, **POD_FIELDS))
    manifest["spec"]["transformer"] = {
        "serviceAccountName": "sa",
        "containers": [{"image": "t:1", **CONTAINER_FIELDS}],
    }
    service = parse_manifest(manifest)
    found = local_warnings(service)
    expected = [f"spec.predictor.{field}" for field in POD_FIELDS]
    expected += [f"spec.predictor.model.{field}" for field in CONTAINER_FIELDS]
    expected += ["spec.transformer.serviceAccountName"]
    expected += [f"spec.transformer.containers[0].{field}" for field in CONTAINER_FIELDS]
    assert sorted(w.split(" ")[0] for w in found) == sorted(expected)
    assert all(" has no effect on the local backend (" in w for w in found)
    ray_only = [w.split(" ")[0] for w in found if "it applies to the Ray backend only" in w]
    assert ray_only == ["spec.predictor.nodeSelector", "spec.predictor.tolerations"]
    shown = service.to_manifest()["spec"]["predictor"]
    assert {k: shown[k] for k in POD_FIELDS} == POD_FIELDS
    assert {k: shown["model"][k] for k in CONTAINER_FIELDS} == CONTAINER_FIELDS
    assert local_warnings(parse_manifest(isvc())) == []


def test_a_shorthand_keeps_its_container_fields_on_the_model() -> None:
    service = parse_manifest(isvc({"sklearn": {"storageUri": IRIS_URI, "imagePullPolicy": "IfNotPresent"}}))
    assert [w.split(" ")[0] for w in local_warnings(service)] == ["spec.predictor.model.imagePullPolicy"]


def test_ignored_fields_are_checked_for_shape_and_settings_that_matter_stay_errors() -> None:
    assert problems(isvc(predictor(nodeSelector=["gpu"])))["spec.predictor.nodeSelector"] == "must be a mapping"
    for field in ("volumes", "hostNetwork", "readinessProbe"):
        assert "cannot honour" in problems(isvc(predictor(**{field: {}})))[f"spec.predictor.{field}"]
    assert "cannot honour" in problems(isvc(predictor({"volumeMounts": []})))["spec.predictor.model.volumeMounts"]


def test_ignored_fields_make_no_new_revision() -> None:
    assert fingerprint(isvc(predictor(CONTAINER_FIELDS, **POD_FIELDS))) == fingerprint(isvc())
    transformer = {"containers": [{"image": "t:1"}]}
    plain = parse_manifest(isvc(transformer=transformer)).spec.transformer
    transformer = {"containers": [{"image": "t:1", **CONTAINER_FIELDS}], **POD_FIELDS}
    marked = parse_manifest(isvc(transformer=transformer)).spec.transformer
    assert component_fingerprint(plain) == component_fingerprint(marked)


def test_every_ignored_field_has_its_reason() -> None:
    fields = {f.alias for mixin in (PodSettings, ContainerSettings) for f in mixin.model_fields.values()}
    assert fields == set(REASONS)


def test_what_the_server_writes_is_dropped_so_a_shown_resource_applies_unchanged() -> None:
    canonical = parse_manifest(isvc(predictor(**POD_FIELDS))).to_manifest()
    shown = copy.deepcopy(canonical)
    shown["metadata"].update(
        resourceVersion="12", uid="4b1c", creationTimestamp="2024-01-01T00:00:00Z", generation=3, managedFields=[]
    )
    shown["status"] = {"url": "http://iris.default.example.com", "warnings": ["..."], "conditions": []}
    read_back = parse_manifests(yaml.safe_dump(shown, sort_keys=False))
    assert [m.to_manifest() for m in read_back] == [canonical]
    assert "is set by the server" in problems(isvc(predictor(status={})))["spec.predictor.status"]
    assert (
        "is set by the server"
        in problems({**isvc(), "metadata": {"name": "iris", "finalizers": []}})["metadata.finalizers"]
    )
