"""Many TrainedModels in the store: one transaction for an apply's documents and for a pass's statuses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from wharf.control.controller import Controller
from wharf.control.metrics import ControlMetrics
from wharf.control.policy import ManifestPolicy
from wharf.control.store import Change, Store
from wharf.control.trained_models import MAX_STATUSES_PER_PASS, TrainedModels

MODELS = 2_000


class NoReconciler:
    """What the controller asks of a reconciler; TrainedModels never reach it."""

    metrics = ControlMetrics()
    domain = "example.com"

    async def reconcile(self, *_: Any) -> None:
        raise AssertionError("a TrainedModel is not reconciled as a service")


def manifest(i: int) -> dict[str, Any]:
    spec = {"inferenceService": "mms", "model": {"storageUri": f"/m/{i}", "framework": "sklearn", "memory": "1Mi"}}
    metadata = {"name": f"m{i:05d}", "namespace": "default", "labels": {}, "annotations": {}}
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel", "metadata": metadata, "spec": spec}


def test_an_apply_of_thousands_of_trained_models_stores_them_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    heard: list[Change] = []
    store.subscribe(heard.append)
    text = "\n---\n".join(
        f"apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata: {{name: m{i:05d}}}\nspec:\n"
        f"  inferenceService: mms\n  model: {{storageUri: {tmp_path}/m{i}, framework: sklearn, memory: 1Mi}}"
        for i in range(MODELS)
    )
    controller = Controller(
        store,
        NoReconciler(),  # type: ignore[arg-type]
        ManifestPolicy(max_documents=MODELS, storage_roots=[str(tmp_path)]),
    )
    results = asyncio.run(controller.apply(text))
    assert {r["result"] for r in results} == {"created"} and len(results) == MODELS
    assert len(store.list("TrainedModel")) == MODELS and store.version == MODELS
    assert len(heard) == MODELS and all(change.before is None for change in heard)
    again = asyncio.run(controller.apply(text))  # nothing changed: nothing written
    assert {r["result"] for r in again} == {"unchanged"} and store.version == MODELS


def test_statuses_of_many_resources_are_written_together_and_only_when_changed(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    store.put_many([("TrainedModel", "default", f"m{i:05d}", manifest(i), None) for i in range(10)])
    version = store.version
    statuses = [("default", f"m{i:05d}", {"loadedOn": [f"r{i % 2}"]}) for i in range(10)]
    store.set_statuses("TrainedModel", [*statuses, ("default", "gone", {"loadedOn": []})])
    assert store.version == version + 10
    store.set_statuses("TrainedModel", statuses)
    assert store.version == version + 10  # the same statuses: nothing written
    assert store.get("TrainedModel", "default", "m00003").status == {"loadedOn": ["r1"]}


class NoReplicas:
    """A backend whose revisions have no replica yet."""

    def replicas(self, revision: str | None = None) -> list[Any]:
        return []


def test_a_pass_writes_at_most_its_share_of_statuses_and_the_next_goes_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    count = MAX_STATUSES_PER_PASS + 500
    store.put_many([("TrainedModel", "default", f"m{i:05d}", manifest(i), None) for i in range(count)])
    routes = SimpleNamespace(model_placements={}, multi_model={})
    models = TrainedModels(store, NoReplicas(), routes)
    asyncio.run(models.sync())
    with_status = [r for r in store.list("TrainedModel") if r.status]
    assert len(with_status) == MAX_STATUSES_PER_PASS
    assert with_status[0].status["conditions"][-1]["reason"] == "InferenceServiceNotFound"
    asyncio.run(models.sync())
    assert all(r.status for r in store.list("TrainedModel"))
    version = store.version
    asyncio.run(models.sync())  # nothing changed: nothing computed or written
    assert store.version == version
    store.delete("TrainedModel", "default", "m00000")
    asyncio.run(models.sync())
    asyncio.run(models.close())


def test_deleting_a_trained_model_keeps_the_revisions_of_a_service_of_its_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    store.revision_for("default", "iris", "predictor", "abc", {})
    store.put("TrainedModel", "default", "iris", manifest(0))
    store.delete("TrainedModel", "default", "iris")
    assert [r.name for r in store.revisions("default", "iris", "predictor")] == ["iris-predictor-00001"]
