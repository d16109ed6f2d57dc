"""The Kubernetes verbs on the control API, behind its real guard: create, get, list (selectors, Tables), replace,
merge and JSON patch, server-side apply with conflicts, delete with preconditions, dry runs, the status subresource,
namespaces, and every refusal as a Status object while Wharf's other routes keep `{"error"}`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.control.fakes import control_plane
from wharf.control.api import create_app
from wharf.control.auth import ControlGuard, Credentials

pytestmark = pytest.mark.anyio
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
MERGE = {"content-type": "application/merge-patch+json"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def service(name: str = "a", **predictor: Any) -> dict[str, Any]:
    model = {"modelFormat": {"name": "custom"}, "storageUri": "models:WhoAmI"}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"predictor": {"model": model, **predictor}},
    }


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    controller = control_plane(tmp_path)
    credentials, _ = Credentials.load_or_create(tmp_path)
    app = ControlGuard(create_app(controller), credentials)
    headers = {"authorization": f"Bearer {credentials.admin}", "user-agent": "tester/1.0"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://127.0.0.1", headers=headers
    ) as client:
        yield client
    controller.close()


def refused(answer: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    body = answer.json()
    assert answer.status_code == code, body
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == code
    assert body["reason"] == reason and body["error"] == body["message"]
    return body


async def test_create_get_list_and_the_metadata_a_server_keeps(api: httpx.AsyncClient) -> None:
    created = await api.post(ISVCS, json=service("a"), params={"fieldManager": "me"})
    assert created.status_code == 201
    metadata = created.json()["metadata"]
    assert metadata["uid"] and metadata["generation"] == 1 and metadata["creationTimestamp"].endswith("Z")
    assert [(m["manager"], m["operation"]) for m in metadata["managedFields"]] == [("me", "Update")]
    again = refused(await api.post(ISVCS, json=service("a")), 409, "AlreadyExists")
    assert again["details"] == {"group": "serving.kserve.io", "kind": "inferenceservices", "name": "a"}

    await api.post(ISVCS, json=service("b"))
    listed = (await api.get(ISVCS, params={"labelSelector": "app in (b,c)"})).json()
    assert listed["kind"] == "InferenceServiceList" and [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(metadata["resourceVersion"])
    everywhere = await api.get(
        "/apis/serving.kserve.io/v1beta1/inferenceservices", params={"fieldSelector": "metadata.name!=a"}
    )
    assert [i["metadata"]["name"] for i in everywhere.json()["items"]] == ["b"]
    got = (await api.get(f"{ISVCS}/a")).json()
    assert got["metadata"]["uid"] == metadata["uid"] and "status" in got
    assert (await api.get(f"{ISVCS}/a/status")).json()["metadata"]["uid"] == metadata["uid"]

    table = await api.get(ISVCS, headers={"accept": TABLE})
    assert table.headers["content-type"].startswith("application/json;as=Table")
    assert table.json()["kind"] == "Table" and [r["cells"][0] for r in table.json()["rows"]] == ["a", "b"]
    namespaces = (await api.get("/api/v1/namespaces")).json()
    assert [n["metadata"]["name"] for n in namespaces["items"]] == ["default"]
    refused(await api.get("/api/v1/namespaces/prod"), 404, "NotFound")


async def test_replace_needs_the_stored_version(api: httpx.AsyncClient) -> None:
    stored = (await api.post(ISVCS, json=service("a"))).json()
    refused(await api.put(f"{ISVCS}/a", json=service("a", minReplicas=2)), 422, "Invalid")
    fresh = {**service("a", minReplicas=2), "metadata": stored["metadata"]}
    replaced = await api.put(f"{ISVCS}/a", json=fresh)
    assert replaced.status_code == 200 and replaced.json()["metadata"]["generation"] == 2
    conflict = refused(await api.put(f"{ISVCS}/a", json=fresh), 409, "Conflict")  # its version is old now
    assert "the object has been modified" in conflict["message"]
    refused(await api.put(f"{ISVCS}/b", json=service("a")), 400, "BadRequest")  # the URL names another
    refused(
        await api.put(f"{ISVCS}/missing", json={**service("missing"), "metadata": {"resourceVersion": "1"}}),
        404,
        "NotFound",
    )


async def test_merge_and_json_patches(api: httpx.AsyncClient) -> None:
    await api.post(ISVCS, json=service("a"))
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 30}}}
    merged = await api.patch(f"{ISVCS}/a", content=json.dumps(patch), headers=MERGE)
    assert merged.json()["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert ("tester", "Update") in {(m["manager"], m["operation"]) for m in merged.json()["metadata"]["managedFields"]}
    operations = [{"op": "replace", "path": "/spec/predictor/canaryTrafficPercent", "value": 50}]
    jsoned = await api.patch(
        f"{ISVCS}/a", content=json.dumps(operations), headers={"content-type": "application/json-patch+json"}
    )
    assert jsoned.json()["spec"]["predictor"]["canaryTrafficPercent"] == 50

    strategic = {"content-type": "application/strategic-merge-patch+json"}
    unsupported = refused(await api.patch(f"{ISVCS}/a", content="{}", headers=strategic), 415, "UnsupportedMediaType")
    assert "application/merge-patch+json" in unsupported["message"]
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"predictor": {"minReplicas": 3}}}
    refused(await api.patch(f"{ISVCS}/a", content=json.dumps(stale), headers=MERGE), 409, "Conflict")
    invalid = refused(
        await api.patch(f"{ISVCS}/a", content='{"spec": {"predictor": {"minReplicas": -1}}}', headers=MERGE),
        422,
        "Invalid",
    )
    assert invalid["details"]["causes"][0]["field"] == "spec.predictor.minReplicas"
    refused(await api.patch(f"{ISVCS}/a", content="{not json", headers=MERGE), 400, "BadRequest")
    refused(await api.patch(f"{ISVCS}/nope", content="{}", headers=MERGE), 404, "NotFound")


async def test_server_side_apply_creates_conflicts_and_forces(api: httpx.AsyncClient) -> None:
    apply = {"content-type": "application/apply-patch+yaml"}
    body = json.dumps(service("a", minReplicas=1))
    refused(await api.patch(f"{ISVCS}/a", content=body, headers=apply), 422, "Invalid")  # no fieldManager
    created = await api.patch(f"{ISVCS}/a", content=body, headers=apply, params={"fieldManager": "ci"})
    assert created.status_code == 201
    same = await api.patch(f"{ISVCS}/a", content=body, headers=apply, params={"fieldManager": "ci"})
    assert (
        same.status_code == 200
        and same.json()["metadata"]["resourceVersion"] == created.json()["metadata"]["resourceVersion"]
    )

    other = json.dumps(service("a", minReplicas=2))
    conflict = refused(
        await api.patch(f"{ISVCS}/a", content=other, headers=apply, params={"fieldManager": "ops"}), 409, "Conflict"
    )
    assert conflict["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "ci"', "field": ".spec.predictor.minReplicas"}
    ]
    forced = await api.patch(
        f"{ISVCS}/a", content=other, headers=apply, params={"fieldManager": "ops", "force": "true"}
    )
    assert forced.json()["spec"]["predictor"]["minReplicas"] == 2
    refused(await api.patch(f"{ISVCS}/a", content="{}", headers=MERGE, params={"force": "true"}), 422, "Invalid")

    model = str(Path.cwd() / "model.joblib")  # where the policy lets models load from
    shorthand = {**service("b"), "spec": {"predictor": {"sklearn": {"storageUri": model}}}}
    first = await api.patch(f"{ISVCS}/b", content=json.dumps(shorthand), headers=apply, params={"fieldManager": "ci"})
    again = await api.patch(f"{ISVCS}/b", content=json.dumps(shorthand), headers=apply, params={"fieldManager": "ci"})
    assert first.json()["metadata"]["resourceVersion"] == again.json()["metadata"]["resourceVersion"]  # nothing new
    (ci,) = [m for m in again.json()["metadata"]["managedFields"] if m["manager"] == "ci"]
    assert ci["fieldsV1"]["f:spec"]["f:predictor"]["f:model"]["f:storageUri"] == {}  # the stored field is its


async def test_refusals_and_dry_runs(api: httpx.AsyncClient) -> None:
    invalid = refused(await api.post(ISVCS, json=service("Bad_Name")), 422, "Invalid")
    assert invalid["details"]["causes"][0]["field"] == "metadata.name"
    refused(await api.post(ISVCS, json={**service("a"), "kind": "Pod"}), 400, "BadRequest")
    refused(await api.post(ISVCS, json={**service("a"), "metadata": {}}), 422, "Invalid")
    refused(await api.post(ISVCS, content="a: [", headers={"content-type": "application/yaml"}), 400, "BadRequest")
    refused(await api.get("/apis/serving.kserve.io/v2/namespaces/default/inferenceservices"), 404, "NotFound")
    refused(await api.get("/apis/serving.kserve.io/v1beta1/namespaces/default/pods"), 404, "NotFound")
    refused(await api.get(ISVCS, params={"watch": "true", "resourceVersion": "abc"}), 400, "BadRequest")

    dry = await api.post(ISVCS, json=service("a"), params={"dryRun": "All"})
    assert dry.status_code == 200 and dry.json()["metadata"]["name"] == "a"
    refused(await api.get(f"{ISVCS}/a"), 404, "NotFound")  # nothing stored

    stored = (await api.post(ISVCS, json=service("a"))).json()
    refused(await api.put(f"{ISVCS}/a/status", json=stored), 405, "MethodNotAllowed")
    preconditions = {"preconditions": {"uid": "someone-else"}}
    refused(await api.request("DELETE", f"{ISVCS}/a", json=preconditions), 409, "Conflict")
    deleted = await api.request("DELETE", f"{ISVCS}/a", json={"preconditions": {"uid": stored["metadata"]["uid"]}})
    assert deleted.status_code == 200 and deleted.json()["metadata"]["name"] == "a"
    refused(await api.delete(f"{ISVCS}/a"), 404, "NotFound")

    wharfs_own = await api.post("/apis/apply", content="kind: Nope", headers={"content-type": "application/yaml"})
    assert wharfs_own.status_code == 400 and set(wharfs_own.json()) == {"error"}  # Wharf's routes keep their shape
