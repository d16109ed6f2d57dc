"""KServe's TrainedModel on a real `wharf up`: multi-model parents, models served over V1, V2 and gRPC through the
gateway (each request to the replica that has its model loaded), a small budget that evicts and reloads with the
answers unchanged, a canaried parent that keeps its models on both revisions, deletion that unloads everywhere, and
wrong TrainedModels refused or reported with their reasons. One daemon for the module; the models are trained here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
from sklearn.neighbors import KNeighborsClassifier

from tests.e2e.conftest import Daemon, ready, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROWS = np.array([[1.0, -1.0, 1.0, 0.0], [-1.0, 1.0, -1.0, 0.5], [0.2, 0.3, -0.4, 1.0]])
TIMEOUT_S = 90.0
#: what the small parent's one replica may hold: any one of its three models (about 16 MB of objects each, and up to
#: some 8 MB more where the load's transient allocations stay in the process's resident memory), never two
SMALL_BUDGET = "24Mi"


def service(name: str, replicas: int, budget: str, canary: int | None = None) -> str:
    """A multi-model parent whose replicas' models may take `budget` (within a limit of 1 GiB a replica)."""
    sklearn = {"resources": {"limits": {"memory": "1Gi"}}, "env": [{"name": "WHARF_MEMORY_BUDGET", "value": budget}]}
    predictor: dict[str, Any] = {"minReplicas": replicas, "sklearn": sklearn}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    document = {"metadata": {"name": name}, "spec": {"predictor": predictor}}
    return json.dumps({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", **document})


def trained(name: str, parent: str, uri: Path | str, framework: str = "sklearn", memory: str = "1Mi") -> str:
    spec = {"inferenceService": parent, "model": {"storageUri": str(uri), "framework": framework, "memory": memory}}
    document = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel", "metadata": {"name": name}}
    return json.dumps({**document, "spec": spec})


def train(home: Path) -> dict[str, tuple[Path, list[int]]]:
    """Three brute-force nearest-neighbour models (each keeps its 400,000 training rows and labels: 16 MB, measured
    when loaded) under WHARF_HOME/models, with their answers to ROWS."""
    rng = np.random.default_rng(7)
    models = {}
    for i in range(3):
        x = rng.normal(size=(400_000, 4))
        model = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(x, (x[:, i] > 0).astype(int))
        path = home / "models" / f"k{i}" / "model.joblib"
        path.parent.mkdir(parents=True)
        joblib.dump(model, path)
        models[f"k{i}"] = (path.parent, model.predict(ROWS).tolist())
    return models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[int]]]:
    return train(tmp_path_factory.getbasetemp() / "trained-models-home")


@pytest.fixture(scope="module")
def daemon(models: dict[str, tuple[Path, list[int]]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """`wharf up` with two multi-model parents: `mms` (two replicas, room for all) serving a and b, and `small`
    (one replica, SMALL_BUDGET) serving s0, s1 and s2."""
    running = start_daemon(tmp_path_factory.getbasetemp() / "trained-models-home")
    try:
        documents = [
            service("mms", 2, "256Mi"),
            service("small", 1, SMALL_BUDGET),
            trained("a", "mms", models["k0"][0]),
            trained("b", "mms", models["k1"][0]),
            *(trained(f"s{i}", "small", models[f"k{i}"][0]) for i in range(3)),
        ]
        running.wharf("apply", "-f", "-", stdin="\n---\n".join(documents))
        for name in ("a", "b", "s0", "s1", "s2"):
            wait_for(running, name, ready)
        # Every replica of mms has both registered, so their placement is made before the first request (a request
        # that comes before it may go to either replica and load its model there too).
        wait_for(running, "mms", lambda isvc: _registered_everywhere(isvc, 2, 2), kind="isvc")
        yield running
    finally:
        running.stop()


def wait_for(
    daemon: Daemon, name: str, met: Callable[[dict[str, Any]], bool], kind: str = "tm", timeout: float = TIMEOUT_S
) -> dict[str, Any]:
    return daemon.wait(name, met, timeout, kind=kind)


def condition(item: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in item.get("status", {}).get("conditions", []) if c["type"] == kind)


def v1(daemon: Daemon, host: str, model: str) -> httpx.Response:
    body = {"instances": ROWS.tolist()}
    return httpx.post(f"{daemon.gateway_url}/v1/models/{model}:predict", json=body, headers={"host": host}, timeout=60)


def predictions(daemon: Daemon, host: str, model: str) -> list[int]:
    answer = v1(daemon, host, model)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def held(daemon: Daemon, parent: str) -> dict[str, Any]:
    """The parent's `multiModel` status: each replica's models."""
    return daemon.isvc(parent).get("status", {}).get("multiModel") or {"replicas": {}}


def test_models_are_served_over_v1_v2_and_grpc_each_from_the_replica_that_loaded_it(
    daemon: Daemon, models: dict[str, tuple[Path, list[int]]]
) -> None:
    host = "mms.default.example.com"
    for _ in range(5):
        assert predictions(daemon, host, "a") == models["k0"][1]
        assert predictions(daemon, host, "b") == models["k1"][1]
    body = {"inputs": [{"name": "x", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.ravel().tolist()}]}
    answer = httpx.post(f"{daemon.gateway_url}/v2/models/b/infer", json=body, headers={"host": host}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == models["k1"][1]
    client = triton.InferenceServerClient(f"127.0.0.1:{daemon.grpc_port}")
    try:
        tensor = triton.InferInput("x", list(ROWS.shape), "FP64")
        tensor.set_data_from_numpy(ROWS)
        result = client.infer("a", [tensor])  # the model's name alone finds its parent
        assert result.as_numpy(result.get_response().outputs[0].name).tolist() == models["k0"][1]
    finally:
        client.close()
    # Each model went to one replica: the gateway sent its later requests where it was loaded, not to the other.
    for name in ("a", "b"):
        found = wait_for(daemon, name, lambda tm: bool(tm["status"].get("loadedOn")))
        assert len(found["status"]["loadedOn"]) == 1, found["status"]
        assert found["status"]["url"] == f"http://{host}/v1/models/{name}"
    listed = daemon.wharf("get", "trainedmodels").stdout
    assert listed.split("\n")[0].split() == ["NAME", "ISVC", "FRAMEWORK", "READY", "LOADED", "ON", "URL", "AGE"]
    described = daemon.wharf("describe", "tm", "a").stdout
    assert "Multi-model replicas:" in described and "loaded" in described


def test_a_small_budget_evicts_and_reloads_with_the_answers_unchanged(
    daemon: Daemon, models: dict[str, tuple[Path, list[int]]]
) -> None:
    host = "small.default.example.com"
    for _ in range(2):
        for i in range(3):
            assert predictions(daemon, host, f"s{i}") == models[f"k{i}"][1]
    summary = wait_for(
        daemon,
        "small",
        # (the status of a pass may show the first round's eviction before the second round's loads)
        lambda isvc: any((r.get("evictions") or 0) > 0 and (r.get("loads") or 0) > 3 for r in held_in(isvc).values()),
        kind="isvc",
    )
    [replica] = held_in(summary).values()
    assert replica["loads"] > 3 and replica["usedBytes"] <= replica["budgetBytes"]
    assert "Multi-model replicas:" in daemon.wharf("describe", "isvc", "small").stdout


def held_in(isvc: dict[str, Any]) -> dict[str, Any]:
    return (isvc.get("status", {}).get("multiModel") or {}).get("replicas") or {}


def _registered_everywhere(isvc: dict[str, Any], replicas: int, models: int) -> bool:
    held = held_in(isvc)
    return len(held) == replicas and all((replica.get("registered") or 0) >= models for replica in held.values())


def test_wrong_trained_models_are_refused_or_reported_and_the_others_unaffected(
    daemon: Daemon, models: dict[str, tuple[Path, list[int]]]
) -> None:
    refused = daemon.wharf(
        "apply", "-f", "-", stdin=trained("bad", "mms", models["k0"][0], framework="triton"), check=False
    )
    assert refused.returncode != 0 and "spec.model.framework" in refused.stderr
    wrong = [
        trained("orphan", "missing", models["k0"][0]),
        trained("xgb", "mms", models["k0"][0], framework="xgboost"),
        trained("huge", "small", models["k0"][0], memory="1Gi"),
    ]
    daemon.wharf("apply", "-f", "-", stdin="\n---\n".join(wrong))
    for name, failing, reason in (
        ("orphan", "InferenceServiceReady", "InferenceServiceNotFound"),
        ("xgb", "IsMMSPredictor", "FrameworkNotSupported"),
        ("huge", "MemoryResourceAvailable", "MemoryResourceNotAvailable"),
    ):
        found = wait_for(daemon, name, lambda tm: bool(tm.get("status", {}).get("conditions")))
        assert condition(found, failing)["reason"] == reason
        assert condition(found, "Ready")["status"] == "False" and condition(found, "Ready")["message"]
    answer = v1(daemon, "mms.default.example.com", "xgb")
    assert answer.status_code == 404  # registered nowhere
    assert predictions(daemon, "mms.default.example.com", "a") == models["k0"][1]
    for name in ("orphan", "xgb", "huge"):
        daemon.wharf("delete", "tm", name)


def test_a_canaried_parent_keeps_its_models_on_both_revisions(
    daemon: Daemon, models: dict[str, tuple[Path, list[int]]]
) -> None:
    daemon.wharf("apply", "-f", "-", stdin=service("small", 1, "26Mi", canary=50))

    def on_both(isvc: dict[str, Any]) -> bool:
        replicas = held_in(isvc).values()
        return len({r["revision"] for r in replicas}) == 2 and all(r["registered"] == 3 for r in replicas)

    wait_for(daemon, "small", on_both, kind="isvc", timeout=120)
    for tag in ("latest", "prev"):  # each revision answers for every model
        for i in range(3):
            assert predictions(daemon, f"{tag}-small.default.example.com", f"s{i}") == models[f"k{i}"][1]


def test_deleting_a_trained_model_unloads_it_from_every_replica(
    daemon: Daemon, models: dict[str, tuple[Path, list[int]]]
) -> None:
    assert predictions(daemon, "mms.default.example.com", "b") == models["k1"][1]
    daemon.wharf("delete", "trainedmodel", "b")
    wait_for(
        daemon,
        "mms",
        lambda isvc: len(held_in(isvc)) == 2 and all(r["registered"] == 1 for r in held_in(isvc).values()),
        kind="isvc",
    )
    assert v1(daemon, "mms.default.example.com", "b").status_code == 404
    assert predictions(daemon, "mms.default.example.com", "a") == models["k0"][1]
