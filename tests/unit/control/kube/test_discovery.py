"""Discovery as kubectl reads it: the legacy documents, the aggregated one when the Accept header asks for it first
(with the Content-Type client-go reads to tell them apart), every route behind the control API's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.unit.control.fakes import control_plane
from wharf.control.api import create_app
from wharf.control.auth import ControlGuard, Credentials
from wharf.control.kube import discovery
from wharf.control.kube.routes import kube_router

pytestmark = pytest.mark.anyio
#: What kubectl 1.32 sends for /api and /apis.
KUBECTL_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
GROUP = "serving.kserve.io"


def by_name(resources: list[dict], name: str) -> dict:
    return next(r for r in resources if r["name"] == name)


def test_the_group_lists_both_versions_preferring_v1beta1() -> None:
    groups = discovery.api_group_list()
    assert groups["kind"] == "APIGroupList"
    assert [g["name"] for g in groups["groups"]] == [GROUP, "wharf.dev", "sources.knative.dev"]  # KServe, BatchJob, KafkaSource
    kserve = groups["groups"][0]
    assert kserve["name"] == GROUP
    assert [v["groupVersion"] for v in kserve["versions"]] == [f"{GROUP}/v1beta1", f"{GROUP}/v1alpha1"]
    assert kserve["preferredVersion"] == {"groupVersion": f"{GROUP}/v1beta1", "version": "v1beta1"}
    assert discovery.api_group(GROUP) == {"kind": "APIGroup", "apiVersion": "v1", **kserve}
    assert discovery.api_group("apps") is None
    assert discovery.api_versions()["versions"] == ["v1"]


def test_inferenceservices_have_kserves_names_verbs_and_a_status_subresource() -> None:
    listed = discovery.api_resource_list(GROUP, "v1beta1")
    assert listed is not None and listed["groupVersion"] == f"{GROUP}/v1beta1"
    isvc = by_name(listed["resources"], "inferenceservices")
    assert isvc == {
        "name": "inferenceservices",
        "singularName": "inferenceservice",
        "namespaced": True,
        "kind": "InferenceService",
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": ["isvc"],
        "categories": ["all", "kserve"],
    }
    status = by_name(listed["resources"], "inferenceservices/status")
    assert status["kind"] == "InferenceService" and status["verbs"] == ["get"]
    assert "inferencegraphs" not in {r["name"] for r in listed["resources"]}


def test_inferencegraphs_are_v1alpha1_with_short_name_ig() -> None:
    listed = discovery.api_resource_list(GROUP, "v1alpha1")
    assert listed is not None
    graph = by_name(listed["resources"], "inferencegraphs")
    assert (graph["kind"], graph["shortNames"], graph["namespaced"]) == ("InferenceGraph", ["ig"], True)
    names = {"inferencegraphs", "inferencegraphs/status", "trainedmodels", "trainedmodels/status"}
    names.add("clusterservingruntimes")  # for `wharf export`
    assert {r["name"] for r in listed["resources"]} == names
    runtimes = by_name(listed["resources"], "clusterservingruntimes")
    assert (runtimes["kind"], runtimes["namespaced"]) == ("ClusterServingRuntime", False)
    assert runtimes["verbs"] == ["get", "list"]


def test_the_core_group_serves_namespaces_only_and_unknown_versions_are_none() -> None:
    core = discovery.api_resource_list("", "v1")
    assert core is not None and core["groupVersion"] == "v1"
    [namespaces] = core["resources"]
    assert (namespaces["name"], namespaces["namespaced"], namespaces["shortNames"]) == ("namespaces", False, ["ns"])
    assert discovery.api_resource_list(GROUP, "v1") is None
    assert discovery.api_resource_list("apps", "v1") is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_ACCEPT, discovery.AGGREGATED[0]),
        ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", discovery.AGGREGATED[1]),
        ("application/json;g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList;q=0.9", discovery.AGGREGATED[0]),
        ("application/json", None),
        ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
        ("", None),
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None),
    ],
)
def test_the_aggregated_document_only_when_asked_for_before_plain_json(accept: str, expected: str | None) -> None:
    assert discovery.aggregated_media_type(accept) == expected


def test_the_aggregated_document_names_every_resource_with_its_scope_and_subresources() -> None:
    document = discovery.aggregated([GROUP], discovery.AGGREGATED[0])
    assert (document["kind"], document["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    [group] = document["items"]
    assert group["metadata"] == {"name": GROUP}
    v1beta1, v1alpha1 = group["versions"]
    assert (v1beta1["version"], v1alpha1["version"]) == ("v1beta1", "v1alpha1")
    [isvc] = v1beta1["resources"]
    assert isvc["responseKind"] == {"group": GROUP, "version": "v1beta1", "kind": "InferenceService"}
    assert (isvc["resource"], isvc["scope"], isvc["singularResource"]) == (
        "inferenceservices",
        "Namespaced",
        "inferenceservice",
    )
    assert isvc["shortNames"] == ["isvc"] and isvc["categories"] == ["all", "kserve"]
    assert isvc["subresources"] == [
        {"subresource": "status", "responseKind": isvc["responseKind"], "verbs": ["get"]}
    ]
    assert [r.get("shortNames") for r in v1alpha1["resources"]] == [["ig"], ["tm"], None]  # the last: runtimes
    core = discovery.aggregated([""], discovery.AGGREGATED[1])
    assert core["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert core["items"][0]["versions"][0]["resources"][0]["scope"] == "Cluster"


def test_version_names_the_kubernetes_release_followed_and_wharfs_own() -> None:
    info = discovery.version_info()
    assert (info["major"], info["minor"]) == ("1", str(discovery.KUBE_MINOR))
    assert info["gitVersion"].startswith(f"v1.{discovery.KUBE_MINOR}.0+wharf.")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Credentials]]:
    controller = control_plane(tmp_path)
    credentials, _ = Credentials.load_or_create(tmp_path)
    transport = httpx.ASGITransport(ControlGuard(create_app(controller, routers=[kube_router()]), credentials))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8443") as client:
        yield client, credentials
    controller.close()


async def test_the_routes_answer_what_kubectl_asks_behind_the_token(api: tuple[httpx.AsyncClient, Credentials]) -> None:
    client, credentials = api
    assert (await client.get("/apis")).status_code == 401
    client.headers["authorization"] = f"Bearer {credentials.viewer}"  # reading discovery is a viewer's right
    aggregated = await client.get("/apis", headers={"accept": KUBECTL_ACCEPT})
    assert aggregated.headers["content-type"] == discovery.AGGREGATED[0]
    assert aggregated.json()["items"][0]["metadata"]["name"] == GROUP
    legacy = await client.get("/apis", headers={"accept": "application/json"})
    assert legacy.headers["content-type"] == "application/json" and legacy.json()["kind"] == "APIGroupList"
    core = await client.get("/api", headers={"accept": KUBECTL_ACCEPT})
    assert core.json()["items"][0]["metadata"]["name"] == ""
    assert (await client.get("/api")).json()["kind"] == "APIVersions"
    assert (await client.get("/api/v1")).json()["resources"][0]["name"] == "namespaces"
    assert (await client.get(f"/apis/{GROUP}")).json()["kind"] == "APIGroup"
    assert by_name((await client.get(f"/apis/{GROUP}/v1beta1")).json()["resources"], "inferenceservices")
    assert (await client.get("/version")).json()["minor"] == str(discovery.KUBE_MINOR)
    for unknown in ("/apis/apps", f"/apis/{GROUP}/v9"):
        answer = await client.get(unknown)
        assert answer.status_code == 404, unknown
        assert unknown.rpartition("/")[2] in answer.text
