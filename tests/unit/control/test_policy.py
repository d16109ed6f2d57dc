"""What a manifest may do: storage schemes and roots, pickles, custom classes, environment, arguments and replica
caps, each refusal naming the field and the setting; and the policy applied by the controller and its API."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.control.fakes import control_plane
from tests.unit.model.test_custom_class_names import CLASSES, NOT_CLASSES
from wharf.control.api import create_app
from wharf.control.controller import Controller
from wharf.control.plan import ISVC_KIND
from wharf.control.policy import ManifestPolicy
from wharf.control.spec import parse_manifest, parse_manifests
from wharf.errors import ConfigurationError
from wharf.model.runtimes.custom import names_class

ROOT = Path(__file__).parents[3]
EXAMPLES = ROOT / "examples" / "isvc"


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's working directory is the repository's (as `wharf up` in tests/e2e); no policy from outside."""
    monkeypatch.chdir(ROOT)
    for name in ("WHARF_HOME", "WHARF_POLICY_MAX_REPLICAS_PER_REVISION", "WHARF_POLICY_CUSTOM_CLASSES"):
        monkeypatch.delenv(name, raising=False)


def isvc(model: dict[str, Any] | None = None, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "models/iris.joblib", **(model or {})},
                **predictor,
            }
        },
    }


def custom(env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return isvc({"modelFormat": {"name": "custom"}, "storageUri": "fraud.models:FraudModel", "env": env or []})


def problems(manifest: dict[str, Any], policy: ManifestPolicy | None = None) -> dict[str, str]:
    return dict((policy or ManifestPolicy()).problems(parse_manifest(manifest)))


# -- the defaults ------------------------------------------------------------------------------------------------


def test_every_example_is_allowed_by_default() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for manifest in parse_manifests(path.read_text(), base=path.parent):  # as `wharf apply -f PATH` reads it
            assert ManifestPolicy().problems(manifest, path.parent) == [], path.name


def test_the_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WHARF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WHARF_POLICY_STORAGE_ROOTS", '["/models"]')
    monkeypatch.setenv("WHARF_POLICY_CUSTOM_CLASSES", "false")
    policy = ManifestPolicy()
    assert policy.local_roots == (Path("/models"), tmp_path / "home" / "models")
    assert policy.code_roots == (ROOT,) and not policy.custom_classes
    assert ManifestPolicy.setting("pickle_schemes") == "WHARF_POLICY_PICKLE_SCHEMES"


# -- storage -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["/etc/passwd", "../elsewhere/model.joblib", "file:///root/model.joblib"])
def test_a_local_path_outside_the_roots_is_refused(uri: str) -> None:
    reason = problems(isvc({"storageUri": uri}))["spec.predictor.model.storageUri"]
    assert "is outside the directories models load from" in reason and str(ROOT) in reason
    assert "(WHARF_POLICY_STORAGE_ROOTS, or WHARF_HOME/models)" in reason


def test_local_paths_under_the_working_directory_and_homes_models_load(tmp_path: Path) -> None:
    policy = ManifestPolicy(home=tmp_path)
    for uri in ("examples/iris/model.joblib", f"file://{ROOT}/m.joblib", str(tmp_path / "models/m.joblib")):
        assert problems(isvc({"storageUri": uri}), policy) == {}, uri


@pytest.mark.parametrize("name", ["credentials.json", "daemon.json", "wharf.db", "logs/iris-00001-1.log", "."])
def test_wharfs_own_state_is_no_model_even_under_a_storage_root(name: str, tmp_path: Path) -> None:
    """The default WHARF_HOME, .wharf, lies in the working directory, the default storage root: its tokens,
    database and logs still do not load (a model's load error could show what it read)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "link.joblib").symlink_to(tmp_path / ".wharf" / "wharf.db")
    policy = ManifestPolicy(home=tmp_path / ".wharf", storage_roots=(tmp_path,))
    for uri in (str(tmp_path / ".wharf" / name), f"file://{tmp_path}/.wharf/{name}", str(tmp_path / "link.joblib")):
        reason = problems(isvc({"storageUri": uri}), policy)["spec.predictor.model.storageUri"]
        assert "is Wharf's own state (WHARF_HOME: its tokens, database and logs), not a model" in reason, uri
        assert reason.endswith(f"models in WHARF_HOME go in {tmp_path / '.wharf' / 'models'}")
    assert problems(isvc({"storageUri": str(tmp_path / ".wharf/models/m.joblib")}), policy) == {}
    assert problems(isvc({"storageUri": str(tmp_path / "models/m.joblib")}), policy) == {}


def test_a_symbolic_link_out_of_a_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to("/etc")
    policy = ManifestPolicy(storage_roots=(tmp_path / "root",))
    assert problems(isvc({"storageUri": str(tmp_path / "root/out/passwd")}), policy)
    assert problems(isvc({"storageUri": str(tmp_path / "root/in/m.joblib")}), policy) == {}


def test_a_scheme_the_policy_leaves_out_is_refused() -> None:
    policy = ManifestPolicy(storage_schemes=("file", "pvc"))
    reason = problems(isvc({"storageUri": "s3://bucket/model.joblib"}), policy)["spec.predictor.model.storageUri"]
    assert reason == (
        "s3:// is not among the storage schemes this Wharf loads from: file, pvc (WHARF_POLICY_STORAGE_SCHEMES)"
    )


@pytest.mark.parametrize("model_format", ["sklearn", "pytorch"])
def test_a_pickle_over_http_is_refused_unless_allowed(model_format: str) -> None:
    manifest = isvc({"modelFormat": {"name": model_format}, "storageUri": "https://example.com/model"})
    reason = problems(manifest)["spec.predictor.model.storageUri"]
    assert f"a {model_format} model is a pickle" in reason and "loading a pickle runs the code it names" in reason
    assert "only from file, pvc, s3, gs, az (WHARF_POLICY_PICKLE_SCHEMES)" in reason
    assert problems(manifest, ManifestPolicy(pickle_schemes=("https",))) == {}


def test_formats_that_are_not_pickles_load_over_http_and_pickles_from_buckets() -> None:
    assert problems(isvc({"modelFormat": {"name": "onnx"}, "storageUri": "https://example.com/m.onnx"})) == {}
    assert problems(isvc({"storageUri": "gs://kfserving-examples/models/sklearn/1.0/model"})) == {}


# -- code --------------------------------------------------------------------------------------------------------


def test_pythonpath_may_name_only_directories_under_the_code_roots() -> None:
    assert problems(custom([{"name": "PYTHONPATH", "value": "examples/transformers:tests"}])) == {}
    found = problems(custom([{"name": "A", "value": "1"}, {"name": "PYTHONPATH", "value": "models:/tmp/evil"}]))
    assert found == {
        "spec.predictor.model.env[1].value": (
            f"PYTHONPATH names /tmp/evil, outside the directories code loads from: {ROOT} (WHARF_POLICY_CODE_ROOTS)"
        )
    }
    assert (
        problems(custom([{"name": "PYTHONPATH", "value": "/tmp/evil"}]), ManifestPolicy(code_roots=(Path("/tmp"),)))
        == {}
    )


def test_custom_classes_are_refused_when_the_policy_turns_them_off() -> None:
    policy = ManifestPolicy(custom_classes=False)
    assert problems(custom(), policy) == {
        "spec.predictor.model.storageUri": (
            "fraud.models:FraudModel is a Python class, and this Wharf runs none from manifests"
            " (WHARF_POLICY_CUSTOM_CLASSES)"
        )
    }
    # a path the model server would read as module:Class is one too, whatever the format says
    assert "spec.predictor.model.storageUri" in problems(isvc({"storageUri": "m:Evil"}), policy)


@pytest.mark.parametrize("uri", [*CLASSES, *NOT_CLASSES])
@pytest.mark.parametrize("model_format", ["sklearn", "onnx"])
def test_the_spec_runs_as_a_class_exactly_what_the_model_server_imports(uri: str, model_format: str) -> None:
    """`s3:Model` is no storage URI: the model server imports module s3, so the custom-class rules apply to it."""
    try:
        model = parse_manifest(isvc({"modelFormat": {"name": model_format}, "storageUri": uri})).spec.predictor.model
    except ConfigurationError:
        assert not names_class(uri)  # refused by validation (an unknown scheme): runs nothing
        return
    assert model is not None and model.names_class == names_class(uri)
    refused = problems(isvc({"storageUri": uri}), ManifestPolicy(custom_classes=False, pickle_schemes=("https",)))
    assert ("is a Python class" in refused.get("spec.predictor.model.storageUri", "")) == names_class(uri)


def test_a_transformer_is_checked_as_the_predictor_is() -> None:
    manifest = isvc()
    manifest["spec"]["transformer"] = copy.deepcopy(custom()["spec"]["predictor"])
    manifest["spec"]["transformer"]["model"]["env"] = [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]
    assert set(problems(manifest)) == {"spec.transformer.model.env[0].name"}


# -- environment and arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONHOME", "PYTHONSTARTUP", "PATH", "HOME", "AWS_CONFIG_FILE",
     "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "WHARF_REPOSITORY_API", "WHARF_PVC_ROOT", "WHARF_HOST"],
)  # fmt: skip
def test_variables_that_change_what_a_replica_loads_are_refused(name: str) -> None:
    found = problems(isvc({"env": [{"name": "WHO", "value": "a"}, {"name": name, "value": "x"}]}))
    assert found == {
        "spec.predictor.model.env[1].name": f"{name} may not be set by a manifest: it changes what a replica loads or runs"
    }


@pytest.mark.parametrize(
    "name",
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "AWS_PROFILE", "S3_ENDPOINT", "S3_USE_HTTPS",
     "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
     "GCE_METADATA_HOST", "CLOUDSDK_CONFIG", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT",
     "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy", "SSL_CERT_FILE",
     "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "FSSPEC_S3", "FSSPEC_S3_ENDPOINT_URL",
     "FSSPEC_CONFIG_DIR", "HF_ENDPOINT", "HF_HOME", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "KERAS_BACKEND",
     "OPENSSL_CONF", "wharf_pvc_root", "Wharf_Host", "pythonpath"],
)  # fmt: skip
def test_variables_that_move_where_a_model_comes_from_are_refused(name: str) -> None:
    found = problems(isvc({"env": [{"name": name, "value": "x"}]}))
    assert found == {
        "spec.predictor.model.env[0].name": f"{name} may not be set by a manifest: it changes what a replica loads or runs"
    }


def test_a_pickle_from_a_bucket_cannot_be_fetched_from_another_endpoint() -> None:
    """The review's attack: an s3:// pickle (allowed) fetched from the attacker's server by the replica's settings."""
    env = [{"name": "S3_ENDPOINT", "value": "evil:80"}, {"name": "S3_USE_HTTPS", "value": "0"}]
    found = problems(isvc({"storageUri": "s3://b/m.joblib", "env": env}))
    assert set(found) == {"spec.predictor.model.env[0].name", "spec.predictor.model.env[1].name"}


def test_tuning_variables_are_allowed_and_the_denylist_extends() -> None:
    tuning = [
        {"name": n, "value": "2"} for n in ("WHARF_PREDICT_THREADS", "WHARF_ONNX_INTRA_OP_THREADS", "OMP_NUM_THREADS")
    ]
    assert problems(isvc({"env": tuning})) == {}
    assert problems(isvc({"env": [{"name": "wharf_predict_threads", "value": "2"}]})) == {}
    policy = ManifestPolicy(env_denylist=("omp_*",))
    assert problems(isvc({"env": tuning}), policy) == {
        "spec.predictor.model.env[2].name": "OMP_NUM_THREADS may not be set by a manifest on this Wharf"
        " (WHARF_POLICY_ENV_DENYLIST)"
    }


def test_args_give_only_the_model_servers_tuning_options() -> None:
    allowed = ["--max-batch-size", "8", "--max-latency-ms=5"]
    assert problems(isvc({"args": allowed})) == {}
    found = problems(isvc({"args": [*allowed, "--host", "0.0.0.0", "--runtime=sklearn"]}))
    assert set(found) == {
        "spec.predictor.model.args[3]",
        "spec.predictor.model.args[4]",
        "spec.predictor.model.args[5]",
    }
    assert found["spec.predictor.model.args[3]"] == (
        "'--host': Wharf writes a replica's command line; args may give only --max-batch-size, --max-latency-ms"
    )


# -- replicas ----------------------------------------------------------------------------------------------------


def test_replicas_of_a_revision_are_capped() -> None:
    reason = "this Wharf runs at most 64 replicas of a revision (WHARF_POLICY_MAX_REPLICAS_PER_REVISION)"
    assert problems(isvc(minReplicas=1_000_000)) == {"spec.predictor.minReplicas": reason}
    assert problems(isvc(minReplicas=2, maxReplicas=65)) == {"spec.predictor.maxReplicas": reason}
    assert problems(isvc(minReplicas=64, maxReplicas=64)) == {}
    annotated = isvc()
    annotated["metadata"]["annotations"] = {"autoscaling.knative.dev/initialScale": "500"}
    assert problems(annotated) == {'metadata.annotations["autoscaling.knative.dev/initialScale"]': reason}
    graph = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "g"},
        "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}}, "maxReplicas": 100},
    }
    assert problems(graph, ManifestPolicy(max_replicas_per_revision=99)) == {
        "spec.maxReplicas": "this Wharf runs at most 99 replicas of a revision (WHARF_POLICY_MAX_REPLICAS_PER_REVISION)"
    }


# -- the controller and its API ----------------------------------------------------------------------------------


def controller_with(tmp_path: Path, policy: ManifestPolicy | None = None) -> Controller:
    return control_plane(tmp_path, policy=policy)


def controller_apply(controller: Controller, text: str) -> list[dict[str, str]]:
    return asyncio.run(controller.apply(text))


def service(name: str, *lines: str) -> str:
    return "\n".join(
        [
            "apiVersion: serving.kserve.io/v1beta1",
            "kind: InferenceService",
            f"metadata: {{name: {name}}}",
            "spec:",
            "  predictor:",
            *lines,
            "    model:",
            "      modelFormat: {name: custom}",
            "      storageUri: models:WhoAmI",
            "      env: [{name: WHO, value: a}]",
            "",
        ]
    )


def test_the_api_refuses_what_the_policy_forbids_with_400_naming_field_and_setting(tmp_path: Path) -> None:
    controller = controller_with(tmp_path)
    evil = service("evil").replace("{name: WHO, value: a}", "{name: PYTHONPATH, value: /tmp/evil}")
    with TestClient(create_app(controller)) as client:
        refused = client.post("/apis/apply", content=evil)
        assert refused.status_code == 400
        assert refused.json()["error"] == (
            "spec.predictor.model.env[0].value: PYTHONPATH names /tmp/evil, outside the directories code loads"
            f" from: {ROOT} (WHARF_POLICY_CODE_ROOTS)"
        )
        huge = client.post("/apis/apply", content=service("huge", "    minReplicas: 1000000"))
        assert huge.status_code == 400 and huge.json()["error"] == (
            "spec.predictor.minReplicas: this Wharf runs at most 64 replicas of a revision"
            " (WHARF_POLICY_MAX_REPLICAS_PER_REVISION)"
        )
        deep = client.post("/apis/apply", content="".join("  " * i + "a:\n" for i in range(1000)) + "  " * 1000 + "b")
        assert deep.status_code == 400 and deep.json()["error"] == "collections nested more than 64 levels deep"
        deep_json = client.post(
            "/apis/apply", content="[" * 1000 + "]" * 1000, headers={"content-type": "application/json"}
        )
        assert deep_json.status_code == 400 and deep_json.json()["error"] == deep.json()["error"]
    assert controller.store.list(ISVC_KIND) == []


def test_the_manifests_that_made_apply_answer_500_are_refused_with_400(tmp_path: Path) -> None:
    """An integer Python will not read, a scheme fsspec does not know, a module name the file system refuses."""
    controller = controller_with(tmp_path, ManifestPolicy(custom_classes=False))
    with TestClient(create_app(controller)) as client:
        digits = client.post("/apis/apply", content=service("a", "    minReplicas: " + "9" * 5_000))
        assert digits.status_code == 400
        assert "cannot be read as an integer (a manifest's integers have at most 1000" in digits.json()["error"]
        passwd = (
            service("b").replace("{name: custom}", "{name: sklearn}").replace("models:WhoAmI", "FILE:///etc/passwd")
        )
        refused = client.post("/apis/apply", content=passwd)
        assert refused.status_code == 400 and refused.json()["error"].startswith(
            "spec.predictor.model.storageUri: write the scheme as file://, in lower case, at the start"
        )
        long_module = service("c").replace("models:WhoAmI", "m" * 300 + ":WhoAmI")
        refused = client.post("/apis/apply", params={"base": str(tmp_path)}, content=long_module)
        assert refused.status_code == 400 and "is a Python class, and this Wharf runs none" in refused.json()["error"]
    assert controller.store.list(ISVC_KIND) == []


@pytest.mark.parametrize(
    "uri",
    ["file:", "file://", "file://~/m", "file://host/etc/passwd", "file://a::s3://b", "x" * 5_000, "a/" * 3_000,
     "data:x", "local:///etc/passwd", "s3://[x/m", "/%2e%2e/etc/passwd", "C:/etc/passwd", "a::s3://b"],
)  # fmt: skip
def test_the_policy_reads_every_uri_the_spec_lets_through(uri: str) -> None:
    try:
        manifest = parse_manifest(isvc({"storageUri": uri}))
    except ConfigurationError:
        return
    ManifestPolicy().problems(manifest)  # refusals, never an exception


def test_several_documents_name_the_one_at_fault(tmp_path: Path) -> None:
    controller = controller_with(tmp_path)
    text = service("good") + "---\n" + service("bad").replace("WHO", "LD_PRELOAD")
    with pytest.raises(ConfigurationError) as refused:
        controller_apply(controller, text)
    assert refused.value.message.startswith(
        "InferenceService default/bad: spec.predictor.model.env[0].name: LD_PRELOAD may not be set"
    )
    assert controller.store.list(ISVC_KIND) == []


def test_the_resources_and_documents_of_the_machine_are_capped(tmp_path: Path) -> None:
    controller = controller_with(tmp_path, ManifestPolicy(max_resources=2, max_documents=2))
    controller_apply(controller, service("a") + "---\n" + service("b"))
    with pytest.raises(ConfigurationError) as refused:
        controller_apply(controller, service("c"))
    assert refused.value.message == (
        "this apply would make 3 InferenceServices and InferenceGraphs; this Wharf holds at most 2"
        " (WHARF_POLICY_MAX_RESOURCES)"
    )
    assert [r["result"] for r in controller_apply(controller, service("a", "    minReplicas: 2"))] == ["configured"]
    with pytest.raises(ConfigurationError, match=r"more than 2 documents in one text \(WHARF_POLICY_MAX_DOCUMENTS\)"):
        controller_apply(controller, "---\n".join([service("a"), service("b"), service("c")]))
    controller.store.delete(ISVC_KIND, "default", "b")
    assert controller_apply(controller, service("c"))[0]["result"] == "created"


def test_the_controller_takes_the_policy_of_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_POLICY_MAX_REPLICAS_PER_REVISION", "3")
    with pytest.raises(ConfigurationError, match=r"at most 3 replicas of a revision"):
        controller_apply(controller_with(tmp_path), service("a", "    minReplicas: 4"))
