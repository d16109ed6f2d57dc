"""Kubeflow Pipelines on `wharf up`: the example pipeline (`wharf.kfp.pipelines.iris_canary`) run by KFP's local
runner trains a model, stores it, deploys it as a canary, checks its answers through the gateway and promotes it, or
rolls it back when they fall short; the batch pipeline and component score a CSV file as a BatchJob. The components find the
daemon through WHARF_HOME, as the CLI does."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from kfp import local
from sklearn.datasets import load_iris

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon
from tests.processes import ROOT
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.kfp.batch import BatchJobFailed, job_manifest, run
from wharf.kfp.components import run_batch
from wharf.kfp.evaluation import predictions
from wharf.kfp.pipelines import iris_batch, iris_canary
from wharf.kfp.rollout import deploy, gate, service_manifest

pytestmark = [
    pytest.mark.slow,
    # the subprocess runner ignores images, and says so for each task
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("kfp") / "home")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def found_through_home(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The components (and the steps called here) find the daemon by WHARF_HOME alone; pipelines run locally."""
    monkeypatch.setenv("WHARF_HOME", str(daemon.home))
    for variable in ("WHARF_CONTROL_URL", "WHARF_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "runs"))


def _traffic(service: dict[str, Any]) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]}


def _events(daemon: Daemon, name: str) -> list[str]:
    with daemon.control() as control:
        answer = control.get(f"/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}/events")
    return [f"{event['reason']}: {event['message']}" for event in answer.json()["items"]]


def test_a_canary_that_answers_well_is_promoted(daemon: Daemon) -> None:
    first = iris_canary(name="iris", seed=0, threshold=0.8).outputs
    assert (first["verdict"], first["revision"]) == ("promoted", "iris-predictor-00001")  # a new service: all traffic

    second = iris_canary(name="iris", seed=1, threshold=0.8).outputs
    assert (second["verdict"], second["revision"]) == ("promoted", "iris-predictor-00002")
    assert 0.8 <= second["accuracy"] <= 1.0
    assert second["metrics"].metadata == {"accuracy": second["accuracy"]}
    service = daemon.isvc("iris")
    assert _traffic(service) == {"iris-predictor-00002": 100}
    assert service["status"]["components"]["predictor"]["previousRolledoutRevision"] == "iris-predictor-00001"
    assert "canaryTrafficPercent" not in service["spec"]["predictor"]
    storage_uri = service["spec"]["predictor"]["model"]["storageUri"]
    assert storage_uri.startswith(f"{daemon.home}/models/iris/") and storage_uri.endswith("/model.joblib")
    assert "TrafficMoved: predictor traffic: iris-predictor-00001 80%, iris-predictor-00002 20%" in _events(
        daemon, "iris"
    )  # it was a canary before it was promoted


def test_a_canary_that_falls_short_is_rolled_back(daemon: Daemon) -> None:
    model = str(ROOT / "examples/iris/model.joblib")
    deploy(service_manifest("short", model), timeout_s=60)
    outcome = iris_canary(name="short", threshold=1.01).outputs
    assert (outcome["verdict"], outcome["revision"]) == ("rolled back", "short-predictor-00002")
    assert outcome["metrics"].metadata["accuracy"] == outcome["accuracy"] < 1.01
    service = daemon.isvc("short")
    assert _traffic(service) == {"short-predictor-00001": 100}
    rolled_back = next(c for c in service["status"]["conditions"] if c["type"] == "RolledBack")
    assert rolled_back["status"] == "True" and "short-predictor-00002" in rolled_back["message"]

    with pytest.raises(ConfigurationError, match="short-predictor-00001 is no longer the newest of default/short"):
        gate("short", "short-predictor-00001", 1.0, 0.5)  # a verdict on a revision that was not the one measured


def test_answers_are_asked_of_the_revision_named_and_a_model_that_fails_fails_the_deployment(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "b", canary=50))
    daemon.wait("who", lambda s: ready(s) and len(_traffic(s)) == 2)
    rows = [[1.0]] * 12
    assert predictions("who", "who-predictor-00001", rows, batch_size=5) == ["a"] * 12
    assert predictions("who", "who-predictor-00002", rows, batch_size=5) == ["b"] * 12

    broken = daemon.home / "models" / "broken.joblib"
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(b"not a model")
    started = time.monotonic()
    with pytest.raises(
        ModelLoadError, match="(?s)revision broken-predictor-00001 failed to start: .*cannot load .*broken.joblib"
    ):
        deploy(service_manifest("broken", str(broken)), timeout_s=60)
    assert time.monotonic() - started < 20, "a model that cannot load should fail at once, not at the timeout"


def test_a_batch_prediction_runs_as_a_batch_job_and_a_failed_one_fails_the_task(daemon: Daemon, tmp_path: Path) -> None:
    model = ROOT / "examples/iris/model.joblib"
    features = load_iris().data[::10]  # 15 rows
    with open(tmp_path / "iris.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["a", "b", "c", "d"])
        writer.writerows(features.tolist())
    expected = joblib.load(model).predict(features).tolist()
    deploy(service_manifest("scorer", str(model)), timeout_s=60)
    # the example pipeline through the service, then the component with the model file under the same job's name:
    # the finished job is replaced and scores anew
    runs = [
        lambda output: iris_batch(input=str(tmp_path / "iris.csv"), output=output, name="scorer", workers=1),
        lambda output: run_batch(
            name="iris-scores", model=str(model), input=str(tmp_path / "iris.csv"), output=output, workers=1
        ),
    ]
    for number, scoring in enumerate(runs):
        output = tmp_path / f"scores-{number}"
        assert scoring(str(output)).outputs == {"rows_done": 15, "errors": 0, "output": str(output)}
        rows = [row for part in sorted(output.glob("part-*.csv")) for row in csv.DictReader(part.open())]
        assert [int(row["predict"]) for row in rows] == expected

    missing = job_manifest(
        "gone", str(ROOT / "examples/iris/no-such-model.joblib"), str(tmp_path / "iris.csv"), str(tmp_path / "o")
    )
    with pytest.raises(BatchJobFailed, match="BatchJob default/gone failed: wharf batch exited .*no-such-model"):
        run(missing, timeout_s=30)
