"""KServe's own Python SDK (`kserve.KServeClient`, unchanged) against a real `wharf up`, through the kubeconfig it
writes: create, get, wait_isvc_ready (polling and watching), patch, replace and delete of an InferenceService built
from KServe's typed models, every field of which comes back from Wharf; the refusals as KServe's SDK reports them.
One daemon for the module.

Run by test_kserve_sdk.py in a pytest of its own: kserve cannot be imported beside Wharf's or tritonclient's
generated protobuf modules (each registers `inference.*` in protobuf's default pool)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kserve import (
    ApiClient,
    KServeClient,
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
    constants,
)
from kubernetes.client import V1ObjectMeta

from tests.e2e.conftest import iris_model, Daemon, start_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("kserve-sdk") / "home")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> KServeClient:
    return KServeClient(config_file=str(daemon.home / "kubeconfig"))


@pytest.fixture(scope="module")
def model(daemon: Daemon) -> Path:
    return iris_model(daemon)


def isvc(name: str, model: Path, canary: int | None = None) -> V1beta1InferenceService:
    predictor = V1beta1PredictorSpec(
        min_replicas=1,
        canary_traffic_percent=canary,
        model=V1beta1ModelSpec(model_format=V1beta1ModelFormat(name="sklearn"), storage_uri=str(model)),
    )
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(name=name, namespace="default", labels={"team": "ml"}),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def within(sent: Any, answered: Any) -> bool:
    """Whether every field `sent` comes back in `answered` with its value (the server adds its defaults)."""
    if isinstance(sent, dict):
        return isinstance(answered, dict) and all(within(v, answered.get(k)) for k, v in sent.items())
    return sent == answered


def test_create_get_wait_patch_replace_delete(client: KServeClient, model: Path) -> None:
    service = isvc("iris", model)  # KServe's typed models, as a notebook builds them
    created = client.create(service)
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    client.wait_isvc_ready("iris", timeout_seconds=60, polling_interval=0.5)
    got = client.get("iris")
    assert client.is_isvc_ready("iris") and got["status"]["url"] == "http://iris.default.example.com"
    sent = ApiClient().sanitize_for_serialization(service)
    assert within(sent, got), (sent, got)  # nothing the typed models set is lost

    patched = client.patch("iris", isvc("iris", model, canary=40))
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 40 and patched["metadata"]["generation"] == 2

    fresh = isvc("iris", model)  # no resourceVersion: replace fills in the stored one
    fresh.spec.predictor.min_replicas = 2
    replaced = client.replace("iris", fresh)
    assert replaced["spec"]["predictor"]["minReplicas"] == 2
    assert "canaryTrafficPercent" not in replaced["spec"]["predictor"]
    client.wait_isvc_ready("iris", watch=True, timeout_seconds=60, expected_generation=3)
    assert client.get("iris")["status"]["observedGeneration"] == 3

    stale = isvc("iris", model)
    stale.metadata.resource_version = got["metadata"]["resourceVersion"]  # the first version read
    with pytest.raises(RuntimeError, match="Conflict"):
        client.replace("iris", stale)

    client.delete("iris")
    with pytest.raises(RuntimeError, match="NotFound"):
        client.get("iris")


def test_refusals_come_back_as_kserves_errors(client: KServeClient, model: Path) -> None:
    client.create(isvc("twice", model))
    with pytest.raises(RuntimeError, match="AlreadyExists"):
        client.create(isvc("twice", model))
    wrong = isvc("wrong", model, canary=150)
    with pytest.raises(RuntimeError, match=r"Invalid.*canaryTrafficPercent"):
        client.create(wrong)
    client.delete("twice")
