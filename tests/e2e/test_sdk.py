"""Wharf's Python SDK against one real `wharf up`, found as the CLI finds it (its WHARF_HOME): a typed
InferenceService applied, waited for and asked through the gateway (V1 and V2, numpy in and out), its canary split,
promoted and rolled back, a watch seeing the change, an explainer's explanations, typed errors, and deletion."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import aclosing

import numpy as np
import pytest

from tests.e2e.conftest import Daemon, start_daemon
from tests.processes import ROOT
from wharf import AsyncWharf, Wharf
from wharf.control.spec import InferenceService, SpecError
from wharf.errors import InvalidInput, NotFound

pytestmark = pytest.mark.slow

ROWS = np.array([[1.0, 2.0], [3.0, 4.0]])
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("sdk") / "home")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def wharf(daemon: Daemon) -> Iterator[Wharf]:
    """The SDK with no address given: it reads the control API, its token and the gateway from WHARF_HOME."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("WHARF_HOME", str(daemon.home))
        for variable in ("WHARF_CONTROL_URL", "WHARF_TOKEN", "WHARF_GATEWAY_URL"):
            environment.delenv(variable, raising=False)
        with Wharf() as client:
            assert (client.url.rstrip("/"), client.gateway_url) == (daemon.control_url, daemon.gateway_url)
            yield client


def adder(add: float, canary: int | None = None) -> InferenceService:
    """A typed InferenceService whose model adds `add` to its input (telling its revisions apart)."""
    predictor: dict = {
        "model": {
            "modelFormat": {"name": "custom"},
            "storageUri": "wharf_test_models:Add",
            "env": [{"name": "ADD", "value": str(add)}],
        }
    }
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata={"name": "adder"},
        spec={"predictor": predictor},
    )


def answers(wharf: Wharf, count: int) -> set[float]:
    """What `adder` adds, over `count` predictions."""
    return {float(wharf.predict("adder", ROWS)[0, 0] - 1) for _ in range(count)}


def test_a_typed_service_predicts_then_rolls_out_a_canary_and_back(wharf: Wharf, daemon: Daemon) -> None:
    assert [a.result for a in wharf.apply(adder(1))] == ["created"]
    service = wharf.wait_ready("adder", timeout_s=60)
    assert service.url == "http://adder.default.example.com" and service.traffic() == {"adder-predictor-00001": 100}
    assert isinstance(service.manifest, InferenceService) and service.replicas[0].ready

    v2 = wharf.predict("adder", ROWS)
    assert isinstance(v2, np.ndarray) and v2.dtype == np.float64 and v2.tolist() == (ROWS + 1).tolist()
    v1 = wharf.predict("adder", ROWS, protocol="v1")
    assert isinstance(v1, np.ndarray) and v1.tolist() == (ROWS + 1).tolist()

    wharf.apply(adder(100, canary=20))
    split = wharf.wait_ready("adder", timeout_s=60)
    assert split.traffic() == {"adder-predictor-00002": 20, "adder-predictor-00001": 80}
    split = wharf.set_canary("adder", 60)
    assert split.traffic() == {"adder-predictor-00002": 60, "adder-predictor-00001": 40}
    assert answers(wharf, 30) == {1.0, 100.0}

    async def promote_while_watching() -> list[tuple[str, dict[str, int]]]:
        async with AsyncWharf(daemon.control_url, daemon.token) as watcher:
            seen = []
            async with aclosing(watcher.watch(name="adder", timeout_s=30)) as events:
                async for event in events:
                    seen.append((event.type, event.resource.traffic()))
                    if len(seen) == 1:
                        await watcher.promote("adder")
                    elif event.resource.traffic() == {"adder-predictor-00002": 100}:
                        break
            return seen

    seen = asyncio.run(promote_while_watching())
    assert seen[0] == ("ADDED", {"adder-predictor-00002": 60, "adder-predictor-00001": 40})
    assert seen[-1] == ("MODIFIED", {"adder-predictor-00002": 100})
    assert answers(wharf, 5) == {100.0}

    wharf.rollback("adder")  # the traffic goes back once the revision rolled back to has a ready replica again
    rolled_back = wharf.wait_ready("adder", timeout_s=60)
    assert rolled_back.traffic() == {"adder-predictor-00001": 100}
    condition = rolled_back.status.condition("RolledBack")
    assert condition is not None and condition.status == "True"
    assert answers(wharf, 5) == {1.0}


def test_an_explainer_explains_through_the_gateway(wharf: Wharf) -> None:
    models = ROOT / "examples/explainers/models"
    if not (models / "iris-forest.joblib").exists():
        subprocess.run([sys.executable, str(ROOT / "examples/explainers/train.py")], check=True, timeout=300)
    wharf.apply(ROOT / "examples/isvc/explainer-shap.yaml")
    service = wharf.wait_ready("iris-shap", timeout_s=60)
    assert set(service.status.components) == {"predictor", "explainer"}

    explained = wharf.explain("iris-shap", IRIS)
    assert explained["contributions"].shape == (2, 4, 3) and explained["predictions"].shape == (2, 3)
    total = explained["base_values"][np.newaxis, :] + explained["contributions"].sum(axis=1)
    np.testing.assert_allclose(total, explained["predictions"], atol=1e-6)
    v1 = wharf.explain("iris-shap", IRIS, protocol="v1")
    assert len(v1["explanations"]) == 2 and v1["method"] == "shap.tree"
    wharf.delete("iris-shap")


def test_bad_manifests_are_typed_errors_naming_the_field(wharf: Wharf) -> None:
    bad = adder(1).to_manifest()
    bad["spec"]["predictor"]["minReplicas"] = -1
    with pytest.raises(SpecError) as refused:
        wharf.apply(bad)
    assert [path for path, _ in refused.value.problems] == ["spec.predictor.minReplicas"]
    outside = adder(1).to_manifest()  # valid, but the daemon's policy keeps models under its working directory
    outside["metadata"]["name"] = "outside"
    outside["spec"]["predictor"]["model"] = {"modelFormat": {"name": "sklearn"}, "storageUri": "/etc/model.joblib"}
    with pytest.raises(InvalidInput, match="storageUri") as policy:
        wharf.apply(outside)
    assert policy.value.http_status == 400


def test_delete_and_wait_until_deleted(wharf: Wharf) -> None:
    wharf.delete("adder")
    wharf.wait_deleted("adder", timeout_s=30)
    wharf.wait_deleted("iris-shap", timeout_s=30)
    assert wharf.list() == []
    with pytest.raises(NotFound):
        wharf.get("adder")
    with pytest.raises(NotFound):
        wharf.predict("adder", ROWS)
