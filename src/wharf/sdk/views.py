"""What the SDK hands back for a resource: its spec as the control plane's own model (`InferenceService`,
`InferenceGraph`, validated as the control plane validates it), with a typed view of its status (URL, readiness,
conditions, traffic, replicas) and the metadata the server keeps.

Status views read the fields they name and ignore the rest, so that a newer server saying more breaks nothing;
`Resource.document` keeps the whole answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wharf.control.spec import KINDS, InferenceGraph, InferenceService, SpecError, parse_manifest
from wharf.errors import WharfError, answered

M = TypeVar("M", InferenceService, InferenceGraph)
ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
READY = "Ready"


class View(BaseModel):
    """A part of a status as the API writes it (camelCase), read by its Python names; unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore", frozen=True
    )


class Condition(View):
    """A Kubernetes condition: `type` (Ready, PredictorReady, RolledBack, ...) is `status` "True", "False" or
    "Unknown"; `message` says why when it is not."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class TrafficTarget(View):
    """A revision's share of a component's traffic (percent) and its tag (`latest`, `prev`)."""

    revision_name: str
    percent: int
    latest_revision: bool = False
    tag: str | None = None


class ComponentStatus(View):
    """One component's (predictor, transformer, explainer) URL, revisions and traffic split."""

    url: str | None = None
    latest_created_revision: str | None = None
    latest_ready_revision: str | None = None
    latest_rolledout_revision: str | None = None
    previous_rolledout_revision: str | None = None
    traffic: list[TrafficTarget] = Field(default_factory=list)


class Replica(View):
    """One replica of a revision: whether it serves, and if not why (`last_error`, `pending`, `progress`)."""

    id: str
    revision: str
    ready: bool = False
    restarts: int = 0
    pid: int = 0
    http_port: int = 0
    grpc_port: int = 0
    last_error: str | None = None
    pending: str | None = None
    progress: str | None = None


class Status(View):
    """A resource's status: its URL, conditions, components and replicas, written for `observed_generation` of its
    spec."""

    observed_generation: int | None = None
    url: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    components: dict[str, ComponentStatus] = Field(default_factory=dict)
    replicas: list[Replica] = Field(default_factory=list, alias="replicaStates")
    warnings: list[str] = Field(default_factory=list)

    def condition(self, kind: str) -> Condition | None:
        """The condition of type `kind` (compared without case, as kubectl does), if there is one."""
        return next((c for c in self.conditions if c.type.lower() == kind.lower()), None)


class Metadata(View):
    """What the server keeps in a resource's metadata besides what its manifest gives."""

    generation: int | None = None
    creation_timestamp: str | None = None
    resource_version: str | None = None
    uid: str | None = None


@dataclass(frozen=True)
class Resource(Generic[M]):
    """A resource as the control plane shows it: `manifest` as its model (`manifest.spec.predictor`, ...), with
    `status` and the server's `metadata`; `document` is the API's answer as it came."""

    manifest: M
    status: Status
    metadata: Metadata
    document: dict[str, Any] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def namespace(self) -> str:
        return self.manifest.namespace

    @property
    def url(self) -> str | None:
        return self.status.url

    @property
    def conditions(self) -> list[Condition]:
        return self.status.conditions

    @property
    def replicas(self) -> list[Replica]:
        return self.status.replicas

    @property
    def current(self) -> bool:
        """Whether the status was written for this spec (its generation), not an older one."""
        generation, observed = self.metadata.generation, self.status.observed_generation
        return generation is None or (observed is not None and observed >= generation)

    @property
    def ready(self) -> bool:
        """Ready, for the current spec."""
        ready = self.status.condition(READY)
        return ready is not None and ready.status == "True" and self.current

    @property
    def not_ready_because(self) -> str:
        """Why it is not ready: the Ready condition's message ("" when it is ready)."""
        if self.ready:
            return ""
        ready = self.status.condition(READY)
        if ready is not None and not self.current and ready.status == "True":
            return f"the control plane has not caught up with generation {self.metadata.generation} yet"
        return (ready.message if ready else None) or "the control plane has not reported on it yet"

    def traffic(self, component: str = "predictor") -> dict[str, int]:
        """`component`'s split: percent of its traffic by revision name (empty for a graph)."""
        found = self.status.components.get(component)
        return {t.revision_name: t.percent for t in found.traffic} if found else {}


@dataclass(frozen=True)
class WatchEvent(Generic[M]):
    """A change a watch saw: the resource `ADDED`, `MODIFIED` or `DELETED` (then as it was last)."""

    type: ChangeType
    resource: Resource[M]


@dataclass(frozen=True)
class Applied:
    """What `apply` did to one resource: `result` is created, configured or unchanged; `warnings` name fields that
    have no effect on this Wharf."""

    kind: str
    namespace: str
    name: str
    result: str
    warnings: list[str] = field(default_factory=list)


def resource(document: dict[str, Any], kind: type[M]) -> Resource[M]:
    """The typed view of a resource the control API answered with; an answer that does not read as `kind` is the
    server's fault (an answered WharfError naming what is wrong)."""
    try:
        manifest = parse_manifest(document)
        if not isinstance(manifest, kind):
            raise SpecError([("kind", f"expected {kind.__name__}, got {document.get('kind')!r}")])
        return Resource(
            manifest,
            Status.model_validate(document.get("status") or {}),
            Metadata.model_validate(document.get("metadata") or {}),
            document,
        )
    except (SpecError, ValueError) as e:
        raise answered(WharfError(f"malformed {kind.__name__} from the control plane: {e}")) from None


def kind_name(kind: type[InferenceService] | type[InferenceGraph]) -> str:
    """The kind's name as manifests write it (`InferenceService`)."""
    return next(name for name, (_, model) in KINDS.items() if model is kind)
