"""Field managers: who owns which fields after updates, and server-side apply's merge, conflicts and forcing."""

from __future__ import annotations

from typing import Any

from wharf.control.kube.fields import APPLY, UPDATE, applied, decode, encode, fields, kept, updated

V1 = "serving.kserve.io/v1beta1"


def obj(percent: int | None = None, **labels: str) -> dict[str, Any]:
    predictor: dict[str, Any] = {"model": {"storageUri": "/m", "args": ["-x"]}, "minReplicas": 1}
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    metadata = {"name": "a", "namespace": "default", "labels": labels, "uid": "u", "resourceVersion": "3"}
    return {"apiVersion": V1, "kind": "InferenceService", "metadata": metadata, "spec": {"predictor": predictor},
            "status": {"url": "x"}}  # fmt: skip


def owners(managed: list[dict[str, Any]]) -> dict[tuple[str, str], set[tuple[str, ...]]]:
    return {(e["manager"], e["operation"]): decode(e["fieldsV1"]) for e in managed}


def test_fields_are_leaves_less_identity_status_and_server_metadata() -> None:
    assert set(fields(obj(app="x"))) == {
        ("metadata", "labels", "app"),
        ("spec", "predictor", "model", "storageUri"),
        ("spec", "predictor", "model", "args"),  # a list is one field
        ("spec", "predictor", "minReplicas"),
    }
    assert fields({"metadata": {"labels": {}}}) == {("metadata", "labels"): {}}  # an empty map is one too


def test_fields_v1_round_trips() -> None:
    paths = {("spec", "predictor", "minReplicas"), ("metadata", "labels", "example.com/team")}
    encoded = encode(paths)
    assert encoded == {
        "f:metadata": {"f:labels": {"f:example.com/team": {}}},
        "f:spec": {"f:predictor": {"f:minReplicas": {}}},
    }
    assert decode(encoded) == paths and decode({".": {}, **encoded}) == paths


def test_an_update_owns_what_it_changed_and_takes_it_from_others() -> None:
    created = updated([], None, obj(), "creator", V1)
    assert owners(created)[("creator", UPDATE)] == set(fields(obj()))
    patched = updated(created, obj(), obj(30), "patcher", V1)
    assert owners(patched)[("patcher", UPDATE)] == {("spec", "predictor", "canaryTrafficPercent")}
    again = updated(patched, obj(30), obj(40), "creator", V1)
    assert ("patcher", UPDATE) not in owners(again)  # its one field is the creator's again
    assert updated(again, obj(40), obj(40), "creator", V1) == again  # a write of nothing changes no manager


def test_an_apply_merges_its_fields_and_drops_those_it_no_longer_applies() -> None:
    live = obj(app="x")
    managed = updated([], None, live, "creator", V1)
    config = {"apiVersion": V1, "kind": "InferenceService", "metadata": {"name": "a", "labels": {"team": "ml"}},
              "spec": {"predictor": {"timeout": 60}}}  # fmt: skip
    merged, managers, conflicts = applied(live, managed, config, "ci", force=False)
    assert not conflicts
    assert merged["metadata"]["labels"] == {"app": "x", "team": "ml"} and merged["spec"]["predictor"]["timeout"] == 60
    assert owners(managers)[("ci", APPLY)] == {("metadata", "labels", "team"), ("spec", "predictor", "timeout")}
    config["metadata"]["labels"] = {}  # the label no longer applied goes; the creator's stays
    config["spec"] = {"predictor": {"timeout": 60}}
    merged, managers, _ = applied(merged, managers, config, "ci", force=False)
    assert merged["metadata"]["labels"] == {"app": "x"}


def test_an_apply_that_changes_anothers_field_conflicts_unless_forced() -> None:
    live = obj(30)
    managed = updated([], None, live, "kubectl-patch", V1)
    config = {"apiVersion": V1, "kind": "InferenceService", "metadata": {"name": "a"},
              "spec": {"predictor": {"canaryTrafficPercent": 60, "minReplicas": 1}}}  # fmt: skip
    _, _, conflicts = applied(live, managed, config, "kubectl", force=False)
    assert [c.field for c in conflicts] == [".spec.predictor.canaryTrafficPercent"]  # minReplicas: the same value
    assert conflicts[0].message.startswith('conflict with "kubectl-patch" using serving.kserve.io/v1beta1 at ')
    merged, managers, conflicts = applied(live, managed, config, "kubectl", force=True)
    assert not conflicts and merged["spec"]["predictor"]["canaryTrafficPercent"] == 60
    by = owners(managers)
    assert ("spec", "predictor", "canaryTrafficPercent") not in by[("kubectl-patch", UPDATE)]
    assert ("spec", "predictor", "minReplicas") in by[("kubectl-patch", UPDATE)]  # shared: same value
    assert ("spec", "predictor", "minReplicas") in by[("kubectl", APPLY)]


def test_managers_keep_only_fields_the_stored_object_has() -> None:
    managed = updated([], None, obj(30), "a", V1)
    assert owners(kept(managed, obj()))[("a", UPDATE)] == set(fields(obj()))
    assert kept(managed, {"metadata": {}}) == []
