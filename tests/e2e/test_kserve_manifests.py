"""KServe users' manifests through a real `wharf up` and the `wharf` CLI: Kubernetes fields with no effect here are
warned about, not refused; a shown resource applies unchanged; names that take another service's tag host are
refused; relative paths are read from the manifest file's directory."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon, who_answers

KUBERNETES_FIELDS = """\
    serviceAccountName: sa-s3
    nodeSelector: {nvidia.com/gpu.product: A100}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    affinity: {nodeAffinity: {}}
    imagePullSecrets: [{name: registry}]
"""


def with_kubernetes_fields(text: str) -> str:
    return text.replace("  predictor:\n", "  predictor:\n" + KUBERNETES_FIELDS)


def test_kubernetes_fields_are_warned_about_kept_and_round_trip(daemon: Daemon, tmp_path: Path) -> None:
    file = tmp_path / "isvc.yaml"
    file.write_text(with_kubernetes_fields(manifest("who", "a")))
    applied = daemon.wharf("apply", "-f", str(file))
    assert applied.stdout == "inferenceservice/who created\n"
    for field in ("serviceAccountName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert f"warning: spec.predictor.{field} has no effect on the local backend (" in applied.stderr
    daemon.wait("who", ready)
    assert set(who_answers(daemon, "who.default.example.com", 3)) == {"a"}

    shown = daemon.wharf("get", "isvc", "who", "-o", "yaml").stdout
    resource = yaml.safe_load(shown)
    assert resource["spec"]["predictor"]["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert len(resource["status"]["warnings"]) == 5
    again = daemon.wharf("apply", "-f", "-", stdin=shown)
    assert again.stdout == "inferenceservice/who unchanged\n"
    as_json = daemon.wharf("get", "isvc", "who", "-o", "json").stdout
    assert daemon.wharf("apply", "-f", "-", stdin=as_json).stdout == "inferenceservice/who unchanged\n"
    with daemon.control() as control:  # as a Kubernetes client shows it
        resource["metadata"] |= {"resourceVersion": "41", "uid": "0d6c", "generation": 1, "managedFields": []}
        answer = control.post(
            "/apis/apply", content=yaml.safe_dump(resource), headers={"content-type": "application/yaml"}
        )
        [result] = answer.json()["results"]
        assert (result["result"], len(result["warnings"])) == ("unchanged", 5)
    assert daemon.isvc("who")["status"]["components"]["predictor"]["latestCreatedRevision"] == "who-predictor-00001"


def test_names_that_take_a_tag_host_and_a_logger_without_url_are_refused(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("iris", "a"))
    for tag in ("latest", "prev"):
        run = daemon.wharf("apply", "-f", "-", stdin=manifest(f"{tag}-iris", "b"), check=False)
        assert run.returncode == 1
        assert (
            f"InferenceService default/{tag}-iris and InferenceService default/iris would both answer at"
            f" {tag}-iris.default.example.com (the {tag} tag of iris)"
        ) in run.stderr
    logged = manifest("logged", "c").replace("  predictor:\n", "  predictor:\n    logger: {mode: all}\n")
    run = daemon.wharf("apply", "-f", "-", stdin=logged, check=False)
    assert run.returncode == 1
    assert "error: spec.predictor.logger.url: required: a local Wharf has no default sink" in run.stderr
    daemon.wait("iris", ready)
    assert set(who_answers(daemon, "latest-iris.default.example.com", 3)) == {"a"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory outside the daemon's working directory, with a trained model and a custom class."""
    directory = tmp_path / "project"
    (directory / "deploy").mkdir(parents=True)
    rows = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    joblib.dump(LogisticRegression().fit(rows, [0, 0, 1, 1]), directory / "deploy/model.joblib")
    (directory / "deploy/doubler.py").write_text(
        textwrap.dedent(
            """\
            import numpy as np
            from wharf import Model

            class Doubler(Model):
                def predict(self, payload):
                    return {"y": payload.named()["x"] * 2}
            """
        )
    )
    return directory


@pytest.fixture
def rooted(tmp_path: Path, project: Path) -> Iterator[Daemon]:
    """A `wharf up` whose models and code may come from `project` only."""
    roots = json.dumps([str(project)])
    running = start_daemon(
        tmp_path / "home", env={"WHARF_POLICY_STORAGE_ROOTS": roots, "WHARF_POLICY_CODE_ROOTS": roots}
    )
    yield running
    assert running.stop() == 0


def isvc(name: str, model: str) -> str:
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: {name}}}\n"
        f"spec:\n  predictor:\n    model:\n{textwrap.indent(model, '      ')}"
    )


def test_relative_paths_are_read_from_the_manifest_files_directory(rooted: Daemon, project: Path) -> None:
    deploy = project / "deploy"
    (deploy / "iris.yaml").write_text(isvc("iris", "modelFormat: {name: sklearn}\nstorageUri: ./model.joblib\n"))
    (deploy / "doubler.yaml").write_text(isvc("doubler", "modelFormat: {name: custom}\nstorageUri: doubler:Doubler\n"))
    (deploy / "missing.yaml").write_text(isvc("missing", "modelFormat: {name: sklearn}\nstorageUri: gone.joblib\n"))
    for name in ("iris", "doubler", "missing"):  # the CLI runs in the repository root, the daemon too
        assert rooted.wharf("apply", "-f", str(deploy / f"{name}.yaml")).stdout == f"inferenceservice/{name} created\n"

    assert rooted.isvc("iris")["spec"]["predictor"]["model"]["storageUri"] == str(deploy / "model.joblib")
    env = rooted.isvc("doubler")["spec"]["predictor"]["model"]["env"]
    assert env == [{"name": "PYTHONPATH", "value": str(deploy)}]
    rooted.wait("iris", ready)
    rooted.wait("doubler", ready)
    with httpx.Client(base_url=rooted.gateway_url, timeout=10) as client:
        iris = client.post(
            "/v1/models/iris:predict", json={"instances": [[1.0, 1.0]]}, headers={"host": "iris.default.example.com"}
        )
        assert iris.json() == {"predictions": [1]}
        doubled = client.post(
            "/v2/models/doubler/infer",
            json={"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]},
            headers={"host": "doubler.default.example.com"},
        )
        assert doubled.json()["outputs"][0]["data"] == [2, 4]

    gone = str(deploy / "gone.joblib")
    failed = rooted.wait("missing", lambda s: gone in json.dumps(s["status"].get("conditions", [])), timeout=60)
    condition = next(c for c in failed["status"]["conditions"] if c["type"] == "PredictorReady")
    assert f"model path {gone} does not exist" in condition["message"]

    shown = rooted.wharf("get", "isvc", "iris", "-o", "yaml").stdout  # from stdin, in another directory: as stored
    assert rooted.wharf("apply", "-f", "-", stdin=shown).stdout == "inferenceservice/iris unchanged\n"


def test_paths_outside_the_roots_are_refused_naming_the_absolute_path(rooted: Daemon, project: Path) -> None:
    outside = project.parent / "elsewhere"
    outside.mkdir()
    (outside / "doubler.py").write_text((project / "deploy/doubler.py").read_text())
    (outside / "doubler.yaml").write_text(isvc("doubler", "modelFormat: {name: custom}\nstorageUri: doubler:Doubler\n"))
    (outside / "iris.yaml").write_text(isvc("iris", "modelFormat: {name: sklearn}\nstorageUri: model.joblib\n"))
    code = rooted.wharf("apply", "-f", str(outside / "doubler.yaml"), check=False)
    assert code.returncode == 1
    assert f"PYTHONPATH names {outside} (the manifest's directory, where the class's module is)" in code.stderr
    assert "WHARF_POLICY_CODE_ROOTS" in code.stderr
    model = rooted.wharf("apply", "-f", str(outside / "iris.yaml"), check=False)
    assert model.returncode == 1
    assert f"spec.predictor.model.storageUri: {outside / 'model.joblib'} is outside the directories" in model.stderr
