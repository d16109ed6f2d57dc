"""KServe fields that a local Wharf accepts and ignores, saying so: where Kubernetes places a pod, which identity
and image credentials it runs with, its security context and its labels.

Real KServe manifests carry them, and none changes what a local replica does: it is a process on this machine,
run as the daemon's user, from no image. Refusing them would make users edit working files; ignoring them
silently would break the rule that no field is. So a manifest keeps them (`wharf get -o yaml` shows them, and
re-applying it is unchanged), they make no new revision (`ignored_exclude` takes them out of the fingerprint),
and `local_warnings(resource)` names each one set: the apply's answer carries them, and so does the resource's status.

`nodeSelector` and `tolerations` are applied by the Ray backend (backends/node_selection.py): their warning says
so, since the warnings are made from the resource alone, whichever backend the daemon runs.

Fields that do change what a replica does (volumes, probes, env from secrets, commands, DNS and hosts) stay
errors (`common.UNSUPPORTED`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wharf.control.spec.common import Loc, SpecModel, format_path

_PLACEMENT = "it places pods on Kubernetes nodes; replicas run on this machine"
_RAY_PLACEMENT = "it places pods on Kubernetes nodes; it applies to the Ray backend only, by Ray nodes' labels"
_ORDER = "it orders pods for Kubernetes' scheduler; replicas start when the machine has room"
_IDENTITY = (
    "it is a pod's Kubernetes identity; replicas run as the daemon's user, and storage credentials come from the"
    " daemon's environment"
)
_IMAGES = "it is about container images; a local replica runs no image"
_SECURITY = "replicas run as the daemon's user, without a container's isolation"
_LABELS = "it labels pods; set labels on the resource's metadata"

#: Why each field (by its wire name) has no effect on a local replica.
REASONS: dict[str, str] = {
    "nodeSelector": _RAY_PLACEMENT,
    "affinity": _PLACEMENT,
    "tolerations": _RAY_PLACEMENT,
    "topologySpreadConstraints": _PLACEMENT,
    "nodeName": _PLACEMENT,
    "schedulerName": _ORDER,
    "priorityClassName": _ORDER,
    "priority": _ORDER,
    "preemptionPolicy": _ORDER,
    "schedulingGates": _ORDER,
    "serviceAccountName": _IDENTITY,
    "serviceAccount": _IDENTITY,
    "automountServiceAccountToken": _IDENTITY,
    "imagePullSecrets": _IMAGES,
    "imagePullPolicy": _IMAGES,
    "securityContext": _SECURITY,
    "labels": _LABELS,
}

_Object = dict[str, Any]


class PodSettings(SpecModel):
    """The pod fields of a component (KServe inlines Kubernetes' PodSpec) that a local Wharf ignores."""

    node_selector: dict[str, str] | None = None
    affinity: _Object | None = None
    tolerations: list[_Object] | None = None
    topology_spread_constraints: list[_Object] | None = None
    node_name: str | None = None
    scheduler_name: str | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    preemption_policy: str | None = None
    scheduling_gates: list[_Object] | None = None
    service_account_name: str | None = None
    service_account: str | None = None
    automount_service_account_token: bool | None = None
    image_pull_secrets: list[_Object] | None = None
    security_context: _Object | None = None
    labels: dict[str, str] | None = None


class ContainerSettings(SpecModel):
    """The container fields of a model or container (KServe inlines Kubernetes' Container) that a local Wharf
    ignores."""

    image_pull_policy: str | None = None
    security_context: _Object | None = None


_MIXINS = (PodSettings, ContainerSettings)


def local_warnings(resource: SpecModel) -> list[str]:
    """One line per ignored field that `resource` (validated) sets, e.g. `spec.predictor.nodeSelector has no effect
    on the local backend (...)`."""
    return [
        f"{format_path(loc)} has no effect on the local backend ({REASONS[str(loc[-1])]})"
        for loc in _ignored(resource, ())
    ]


def ignored_exclude(model: type[SpecModel]) -> set[str]:
    """The attribute names of `model`'s ignored fields (for `model_dump(exclude=...)`)."""
    return {name for mixin in _MIXINS if issubclass(model, mixin) for name in mixin.model_fields}


def _ignored(model: SpecModel, at: Loc) -> Iterator[Loc]:
    ignored = ignored_exclude(type(model))
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        loc = (*at, field.alias or name)
        if name in ignored:
            if value is not None:
                yield loc
        elif isinstance(value, SpecModel):
            yield from _ignored(value, loc)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, SpecModel):
                    yield from _ignored(item, (*loc, i))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, SpecModel):
                    yield from _ignored(item, (*loc, key))
