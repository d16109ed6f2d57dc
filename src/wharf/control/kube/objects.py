"""A stored resource as the Kubernetes API shows it, and the collections of Wharf's kinds.

An object is its manifest (as validated: defaults filled in) with the metadata the server keeps (`uid`,
`resourceVersion`, `generation`, `creationTimestamp`, `managedFields`) and its `status`, less what only the
reconciler reads (`rollout`, `routing`), with the warnings its manifest deserves (`status.warnings`). A list is
`{KIND}List` with the store's version as its `resourceVersion`: a watch from it misses nothing. Rendering an object
validates its manifest once again (for the warnings): about a millisecond, on reads only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from wharf.control.kube.discovery import RESOURCES, ServedResource
from wharf.control.kube.status import StatusError
from wharf.control.spec import local_warnings, parse_manifest, trainedmodel
from wharf.control.store import Resource
from wharf.errors import ConfigurationError

_HIDDEN_STATUS = ("rollout", "routing")


def served(group: str, version: str, plural: str) -> ServedResource:
    """The collection a path names; StatusError 404 for one Wharf does not serve."""
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural) and resource.group:
            return resource
    raise StatusError(404, f"the server could not find the requested resource ({group}/{version}, {plural})")


def of_kind(kind: str) -> ServedResource:
    """The collection of one of Wharf's kinds."""
    return next(r for r in RESOURCES if r.kind == kind and r.group)


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC, to the second, as Kubernetes writes its timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def document(resource: Resource) -> dict[str, Any]:
    """A resource as the API shows it (the module docstring)."""
    status = {k: v for k, v in resource.status.items() if k not in _HIDDEN_STATUS}
    warnings = _warnings(resource)
    metadata = {
        **resource.manifest.get("metadata", {}),
        "uid": resource.uid,
        "resourceVersion": str(resource.version),
        "generation": resource.generation,
        "creationTimestamp": timestamp(resource.created),
    }
    if resource.managed:
        metadata["managedFields"] = list(resource.managed)
    return {
        **resource.manifest,
        "metadata": metadata,
        "status": {**status, "warnings": warnings} if warnings else status,
    }


def object_list(served: ServedResource, items: Iterable[dict[str, Any]], version: int) -> dict[str, Any]:
    """A list of objects of one collection, as of the store's `version`."""
    return {
        "apiVersion": served.group_version,
        "kind": f"{served.kind}List",
        "metadata": {"resourceVersion": str(version)},
        "items": list(items),
    }


def _warnings(resource: Resource) -> list[str]:
    if resource.kind == trainedmodel.KIND:  # none of its fields is ignored: not parsed again (lists of thousands)
        return []
    try:
        return local_warnings(parse_manifest(resource.manifest))
    except ConfigurationError as e:  # stored by an older Wharf; its reconcile fails and is logged too
        return [f"the stored manifest is no longer valid: {e.message}"]
