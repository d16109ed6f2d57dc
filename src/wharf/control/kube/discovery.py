"""Kubernetes API discovery of what Wharf serves: the documents kubectl (client-go) reads to learn which groups,
versions and kinds there are, under which names (`isvc`, `ig`), in which scope and with which verbs.

- `GET /version`: the server's version (`version_info`). kubectl compares its own minor version with it, and Google
  Cloud SDK's `kubectl` dispatcher picks the kubectl release to run from it: Wharf follows the conventions of the
  Kubernetes release `KUBE_MINOR`.
- `GET /api`, `GET /apis`: the legacy documents (`APIVersions`, `APIGroupList`), or, when the `Accept` header asks
  for it first, the aggregated one (`APIGroupDiscoveryList`, `apidiscovery.k8s.io` v2 or v2beta1) that kubectl
  1.30 and later ask for: every group with its resources in one answer. Its `Content-Type` says which one came, as
  client-go reads it; a client that asks only for `application/json` gets the legacy one and asks each version.
- `GET /apis/{group}` (`APIGroup`), `GET /apis/{group}/{version}` and `GET /api/v1` (`APIResourceList`).

Every resource is listed once, in `RESOURCES`, with its status subresource; the namespaces of the core group are
listed because Wharf's resources live in namespaces (`kubectl get namespaces`). The documents are built once, at
import: discovery costs one dictionary lookup and the serialisation of a few kilobytes per call (kubectl caches it
on disk for its later commands).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wharf import __version__
from wharf.control.spec import batchjob, graph, inferenceservice, kafkasource, trainedmodel
from wharf.export import runtime

KUBE_MINOR = 32  # the Kubernetes release whose API conventions Wharf follows (the kubectl Debian ships with)
DISCOVERY_GROUP = "apidiscovery.k8s.io"
#: The aggregated discovery media types, in the order Wharf prefers them.
AGGREGATED = tuple(f"application/json;g={DISCOVERY_GROUP};v={v};as=APIGroupDiscoveryList" for v in ("v2", "v2beta1"))
CATEGORIES = ("all", "kserve")  # `kubectl get all` and `kubectl get kserve` list them
READ_WRITE = ("create", "delete", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get",)  # status is the controller's: writes to it are refused


@dataclass(frozen=True, slots=True)
class ServedResource:
    """One resource collection of the API, as discovery names it."""

    group: str  # "" for Kubernetes' core group
    version: str
    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    namespaced: bool = True
    verbs: tuple[str, ...] = READ_WRITE
    status: bool = False  # whether `status` is a subresource of its own

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def api_resources(self) -> list[dict[str, Any]]:
        """Its entries of an `APIResourceList`: the collection, then its status subresource."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        entry |= {"shortNames": list(self.short_names)} if self.short_names else {}
        entry |= {"categories": list(self.categories)} if self.categories else {}
        if not self.status:
            return [entry]
        status = {"name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced}
        return [entry, {**status, "kind": self.kind, "verbs": list(STATUS_VERBS)}]

    def discovered(self) -> dict[str, Any]:
        """Its entry of an aggregated discovery document (`APIResourceDiscovery`)."""
        kind = {"group": self.group, "version": self.version, "kind": self.kind}
        entry: dict[str, Any] = {
            "resource": self.plural,
            "responseKind": kind,
            "scope": "Namespaced" if self.namespaced else "Cluster",
            "singularResource": self.singular,
            "verbs": list(self.verbs),
        }
        entry |= {"shortNames": list(self.short_names)} if self.short_names else {}
        entry |= {"categories": list(self.categories)} if self.categories else {}
        if self.status:
            entry["subresources"] = [{"subresource": "status", "responseKind": kind, "verbs": list(STATUS_VERBS)}]
        return entry


def _served(api_version: str, kind: str, short_name: str, categories: tuple[str, ...] = CATEGORIES) -> ServedResource:
    group, version = api_version.split("/")
    singular = kind.lower()
    return ServedResource(group, version, f"{singular}s", singular, kind, (short_name,), categories, status=True)


KSERVE_GROUP = inferenceservice.API_VERSION.split("/")[0]
RESOURCES: tuple[ServedResource, ...] = (
    _served(inferenceservice.API_VERSION, inferenceservice.KIND, "isvc"),
    _served(graph.API_VERSION, graph.KIND, "ig"),
    _served(trainedmodel.API_VERSION, trainedmodel.KIND, "tm", categories=()),  # KServe's CRD names no category
    ServedResource(
        *batchjob.API_VERSION.split("/"), "batchjobs", "batchjob", batchjob.KIND, ("bj",), ("all",), status=True
    ),
    ServedResource(
        *kafkasource.API_VERSION.split("/"), "kafkasources", "kafkasource", kafkasource.KIND, (), ("all",), status=True
    ),
    ServedResource("", "v1", "namespaces", "namespace", "Namespace", ("ns",), namespaced=False, verbs=("get", "list")),
    ServedResource(  # KServe's, none stored: listed so that kubectl can check what `wharf export isvc` writes
        *runtime.API_VERSION.split("/"),
        "clusterservingruntimes",
        "clusterservingruntime",
        runtime.KIND,
        namespaced=False,
        verbs=("get", "list"),
    ),
)
#: group -> its versions, the preferred (KServe's storage version, v1beta1) first
VERSIONS: dict[str, tuple[str, ...]] = {
    "": ("v1",),
    KSERVE_GROUP: ("v1beta1", "v1alpha1"),
    batchjob.API_VERSION.split("/")[0]: (batchjob.API_VERSION.split("/")[1],),
    kafkasource.API_VERSION.split("/")[0]: (kafkasource.API_VERSION.split("/")[1],),
}


def resources_of(group: str, version: str) -> list[ServedResource]:
    return [r for r in RESOURCES if (r.group, r.version) == (group, version)]


def version_info() -> dict[str, str]:
    """`GET /version`: Kubernetes' `version.Info`, naming the Kubernetes release followed and Wharf's own version."""
    return {
        "major": "1",
        "minor": str(KUBE_MINOR),
        "gitVersion": f"v1.{KUBE_MINOR}.0+wharf.{__version__}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "",
        "platform": "",
    }


def api_versions() -> dict[str, Any]:
    """`GET /api`, legacy: the core group's versions."""
    return {"kind": "APIVersions", "apiVersion": "v1", "versions": list(VERSIONS[""]), "serverAddressByClientCIDRs": []}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in VERSIONS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    """`GET /apis`, legacy: every named group."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in VERSIONS if g]}


def api_group(name: str) -> dict[str, Any] | None:
    """`GET /apis/{group}`; None for a group Wharf does not serve."""
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)} if name and name in VERSIONS else None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`GET /apis/{group}/{version}` (`/api/v1` for the core group); None for a version Wharf does not serve."""
    if version not in VERSIONS.get(group, ()):
        return None
    resources = [entry for r in resources_of(group, version) for entry in r.api_resources()]
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def aggregated(groups: Iterable[str], media_type: str) -> dict[str, Any]:
    """The aggregated discovery document (`APIGroupDiscoveryList`) of `groups`, in the version `media_type` names."""
    version = media_type.split(";v=")[1].split(";")[0]
    items = [
        {
            "metadata": {"name": group},
            "versions": [
                {"version": v, "resources": [r.discovered() for r in resources_of(group, v)], "freshness": "Current"}
                for v in VERSIONS[group]
            ],
        }
        for group in groups
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }


def aggregated_media_type(accept: str) -> str | None:
    """The aggregated discovery media type the `Accept` header asks for ahead of plain JSON, if any."""
    for offered in accept.split(","):
        media = ";".join(part.strip() for part in offered.split(";") if not part.strip().startswith("q="))
        if media in AGGREGATED:
            return media
        if media.split(";")[0] in ("application/json", "*/*", "application/*"):
            return None
    return None
