from pathlib import Path

from wharf.control.store import Store


def test_resources_survive_a_reopen_and_count_generations(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    first, changed = store.put("InferenceService", "default", "iris", {"spec": {"a": 1}})
    assert changed and first.generation == 1
    same, changed = store.put("InferenceService", "default", "iris", {"spec": {"a": 1}})
    assert not changed and same.generation == 1
    second, changed = store.put("InferenceService", "default", "iris", {"spec": {"a": 2}})
    assert changed and second.generation == 2 and second.created == first.created
    store.set_status("InferenceService", "default", "iris", {"url": "http://iris.default.example.com"})
    store.close()

    reopened = Store(tmp_path / "wharf.db")
    resource = reopened.get("InferenceService", "default", "iris")
    assert resource is not None
    assert resource.manifest == {"spec": {"a": 2}} and resource.status["url"].startswith("http://iris")
    assert [r.name for r in reopened.list("InferenceService")] == ["iris"]
    assert reopened.list("InferenceService", "other") == []
    assert reopened.delete("InferenceService", "default", "iris")
    assert reopened.get("InferenceService", "default", "iris") is None
    assert not reopened.delete("InferenceService", "default", "iris")


def test_a_revision_is_new_only_when_the_fingerprint_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    first, new = store.revision_for("default", "iris", "predictor", "f1", {"uri": "a"})
    assert new and first.name == "iris-predictor-00001"
    again, new = store.revision_for("default", "iris", "predictor", "f1", {"uri": "a"})
    assert not new and again == first
    second, new = store.revision_for("default", "iris", "predictor", "f2", {"uri": "b"})
    assert new and second.name == "iris-predictor-00002" and second.spec == {"uri": "b"}
    back, new = store.revision_for("default", "iris", "predictor", "f1", {"uri": "a"})
    assert new and back.number == 3  # going back to an old spec is a new revision, as in Knative
    assert [r.number for r in store.revisions("default", "iris", "predictor")] == [1, 2, 3]


def test_replica_records_are_replaced_as_a_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    store.save_replicas({"r1": ("rev-1", {"pid": 10}), "r2": ("rev-1", {"pid": 11})})
    store.save_replicas({"r3": ("rev-2", {"pid": 12})})
    assert store.replicas() == {"r3": ("rev-2", {"pid": 12})}


def test_revision_names_are_unique_across_namespaces(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    default, _ = store.revision_for("default", "iris", "predictor", "f", {})
    prod, _ = store.revision_for("prod", "iris", "predictor", "f", {})
    assert (default.name, prod.name) == ("iris-predictor-00001", "iris-prod-predictor-00001")
