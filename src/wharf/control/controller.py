"""What the control API does: apply manifests, read, watch and delete resources, promote and roll back, show a
resource's events and its replicas' logs.

An apply reads and checks its text off the event loop (a large or hostile manifest must not stall the replicas'
supervision), one apply at a time (the machine's caps count what is stored). Relative paths in a manifest are read
from the directory of its file when the apply names it (`base`), else from the daemon's working directory. Fields
that have no effect on a local replica are kept with the manifest; the apply's answer and the resource's status
(`status.warnings`, computed from the stored manifest) name them.

The Kubernetes API writes one resource at a time (`write`): it proposes the object and its field managers
(`Edit`, made by `wharf.control.kube.resources`), which are checked and stored as an apply's documents are, under the
same lock, so that a read-modify-write of either kind never loses the other's. An apply is an update of each of its
resources by the field manager `wharf` (`wharf.control.kube.fields`).

Watches (`changes`, `wharf.control.kube.watch`) follow the store's changes; they and followed logs end when the
controller closes (`close`), so that the API can stop.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wharf.control.events import EventRecorder
from wharf.control.graph_plan import GRAPH_KIND, graph_nodes
from wharf.control.kube import fields
from wharf.control.kube.objects import document, timestamp
from wharf.control.kube.watch import ChangeLog
from wharf.control.plan import (
    COMPONENTS,
    EXPLAINER,
    ISVC_KIND,
    PREDICTOR,
    TAGS,
    Document,
    component_name,
    parse,
    service_plan,
    unserved_fields,
)
from wharf.control.policy import ManifestPolicy
from wharf.control.reconciler import Reconciler
from wharf.control.replica_logs import log_stream
from wharf.control.spec import SpecError, batchjob, kafkasource, local_warnings, parse_manifest, trainedmodel
from wharf.control.store import EventRecord, Resource, Store, revision_prefix
from wharf.errors import ConfigurationError, InvalidInput, NotFound

#: The field manager of Wharf's own apply (`wharf apply`, `POST /apis/apply`).
WHARF_MANAGER = "wharf"
#: Kinds run by others than the reconciler (BatchJobs, TrainedModels), which answer at no gateway name.
_NOT_RECONCILED = frozenset({batchjob.KIND, trainedmodel.KIND, kafkasource.KIND})


@dataclass(frozen=True, slots=True)
class LogSource:
    """Where a component revision's replica logs are: its directory, and the replicas to show (none: the latest)."""

    revision: str
    directory: Path
    replicas: list[str]


class Edit(Protocol):
    """One write of the Kubernetes API to a resource: the object it proposes for what is stored now (None: nothing),
    and the field managers of what is then stored (its manifest, validated); either may raise StatusError."""

    def proposed(self, current: Resource | None) -> dict[str, Any]: ...

    def managed(self, current: Resource | None, stored: dict[str, Any]) -> list[dict[str, Any]]: ...


class Controller:
    def __init__(self, store: Store, reconciler: Reconciler, policy: ManifestPolicy | None = None) -> None:
        """`policy` (what a manifest may do) defaults to the one the environment sets (WHARF_POLICY_*)."""
        self.store = store
        self.reconciler = reconciler
        self.metrics = reconciler.metrics
        self.policy = policy if policy is not None else ManifestPolicy()
        self.events = EventRecorder(store)
        self.changes = ChangeLog(store)
        self._applying = asyncio.Lock()
        self._closed = False

    def close(self) -> None:
        """End every watch and followed log (the API cannot stop while one streams)."""
        self._closed = True
        self.changes.close()

    async def apply(self, text: str, base: Path | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
        """Store every document (all are checked before any is stored), then reconcile the changed ones. `base`
        (absolute) is the directory of the file `text` was read from. Each result names a resource, what happened
        to it (`created`, `configured`, `unchanged`) and its `warnings`. A `dry_run` checks the same and says what
        would happen, storing nothing."""
        if base is not None and (not base.is_absolute() or "\x00" in str(base)):
            raise ConfigurationError(
                f"base: must be the manifest file's directory as an absolute path, not {base!s:.200}"
            )
        async with self._applying:
            documents = await asyncio.to_thread(self._checked, text, base)
            self._check_together(documents)
            results, changed = [], []
            befores = [self.store.get(doc.kind, doc.namespace, doc.name) for doc in documents]
            managers = [
                fields.updated(
                    before.managed if before else (),
                    before.manifest if before else None,
                    doc.manifest,
                    WHARF_MANAGER,
                    doc.manifest["apiVersion"],
                )
                for doc, before in zip(documents, befores, strict=True)
            ]
            stored = await self._store_all(documents, befores, managers, dry_run)
            for doc, before, (_, was_changed) in zip(documents, befores, stored, strict=True):
                results.append(
                    {
                        "kind": doc.kind,
                        "namespace": doc.namespace,
                        "name": doc.name,
                        "result": "unchanged" if not was_changed else "configured" if before else "created",
                        "warnings": local_warnings(doc.resource),
                    }
                )
                if was_changed and not dry_run:
                    changed.append(doc)
        for doc in changed:
            if doc.kind not in _NOT_RECONCILED:
                await self.reconciler.reconcile(doc.namespace, doc.name)
        return results

    async def write(self, kind: str, namespace: str, name: str, edit: Edit, dry_run: bool = False) -> Resource:
        """Store what `edit` proposes for a resource, checked as an apply's documents are, then reconcile it; returns
        the resource as stored (with `dry_run`, as it would be, storing nothing)."""
        async with self._applying:
            current = self.store.get(kind, namespace, name)
            proposed = edit.proposed(current)
            doc = await asyncio.to_thread(self._checked_object, proposed)
            self._check_together([doc])
            managed = edit.managed(current, doc.manifest)
            [(resource, changed)] = await self._store_all([doc], [current], [managed], dry_run)
        if changed and not dry_run and kind not in _NOT_RECONCILED:
            await self.reconciler.reconcile(namespace, name)
            resource = self.store.get(kind, namespace, name) or resource
        return resource

    async def _store_all(
        self,
        documents: list[Document],
        befores: list[Resource | None],
        managers: list[list[dict[str, Any]]],
        dry_run: bool,
    ) -> list[tuple[Resource, bool]]:
        """Store checked documents with their field managers in one transaction (with `dry_run`, only say what would
        be stored); each resource and whether its manifest changed. A new canary percent retries a rolled-back
        canary."""
        if dry_run:
            return [self._would_store(*each) for each in zip(documents, befores, managers, strict=True)]
        items = [(d.kind, d.namespace, d.name, d.manifest, m) for d, m in zip(documents, managers, strict=True)]
        stored = self.store.put_many(items)
        for doc, before in zip(documents, befores, strict=True):
            if before is None or doc.kind != ISVC_KIND:
                continue
            if retried := _canary_changes(before.manifest, doc.manifest):
                await self.reconciler.readmit(doc.namespace, doc.name, retried)  # a new canary percent: retry it
        return stored

    @staticmethod
    def _would_store(doc: Document, before: Resource | None, managed: list[dict[str, Any]]) -> tuple[Resource, bool]:
        """What storing `doc` would store, and whether its manifest would change."""
        changed = before is None or before.manifest != doc.manifest  # as `Store.put` judges it
        now = time.time()
        would_be = Resource(doc.kind, doc.namespace, doc.name, doc.manifest, 1, {}, now, now, managed=tuple(managed))
        if before is not None:
            generation = before.generation + changed
            would_be = dataclasses.replace(before, manifest=doc.manifest, generation=generation, managed=tuple(managed))
        return would_be, changed

    def _checked(self, text: str, base: Path | None) -> list[Document]:
        """The documents of `text` (relative paths read from `base`), once each is valid, runs here and the policy
        allows it; raises ConfigurationError (SpecError) otherwise. Reads no store: it runs in a worker thread."""
        documents = parse(text, self.policy.max_documents, ManifestPolicy.setting("max_documents"), base)
        self._check_documents(documents, base)
        return documents

    def _checked_object(self, obj: dict[str, Any]) -> Document:
        """One decoded object as a document, checked as `_checked` checks (relative paths from the daemon's working
        directory); runs in a worker thread."""
        manifest = parse_manifest(obj)
        doc = Document(manifest.kind, manifest.namespace, manifest.name, manifest.to_manifest(), manifest)
        self._check_documents([doc], None)
        return doc

    def _check_documents(self, documents: list[Document], base: Path | None) -> None:
        """Raise ConfigurationError (SpecError) for documents that cannot run here or the policy refuses."""
        for doc in documents:
            if doc.kind == GRAPH_KIND:
                graph_nodes(doc.manifest)  # raises on conditions or steps the gateway cannot run
                continue
            if doc.kind in _NOT_RECONCILED:
                continue
            not_served = [f"spec.{path}" for path in unserved_fields(doc.manifest)]
            if not_served:
                raise ConfigurationError(
                    f"InferenceService {doc.namespace}/{doc.name}: {', '.join(not_served)} not served by this Wharf"
                    " yet (a transformer runs as a Python class: model with modelFormat custom); remove them to"
                    " deploy the rest"
                )
            service_plan(doc.manifest, self.reconciler.domain)  # raises on a scaling policy Knative would refuse
        labelled = len(documents) > 1
        problems = [
            (f"{doc.kind} {doc.namespace}/{doc.name}: {path}" if labelled else path, reason)
            for doc in documents
            for path, reason in self.policy.problems(doc.resource, base)
        ]
        if problems:
            raise SpecError(problems)

    def _check_together(self, documents: list[Document]) -> None:
        """Refuse documents that would clash with the stored resources, or not fit beside them."""
        stored = [r for kind in (ISVC_KIND, GRAPH_KIND) for r in self.store.list(kind)]
        self._check_names(documents, stored)
        self._check_room(documents, stored)

    def _check_room(self, documents: list[Document], stored: list[Resource]) -> None:
        """Refuse documents that would take the machine past its count of InferenceServices and InferenceGraphs,
        unless the apply adds none (the machine held more before the cap was lowered). Its replicas are the
        reconciler's cap: a revision runs what room the others leave it, and says so in its status."""
        applied = {_key(doc) for doc in documents if doc.kind in (ISVC_KIND, GRAPH_KIND)}  # what the cap counts
        resources = len(stored) + len(applied - {_key(r) for r in stored})
        if resources > len(stored) and (too_many := self.policy.too_many_resources(resources)):
            raise ConfigurationError(too_many)

    def list(self, kind: str, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """The resources of `kind` (in `namespace`; named `name`: the API's field selector)."""
        return [document(r) for r in self.store.list(kind, namespace) if name in (None, r.name)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return document(self._require(kind, namespace, name))

    def events_of(self, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
        """The resource's recent events, oldest first, as Kubernetes' Event objects show them."""
        self._require(kind, namespace, name)
        return [_event(e) for e in self.store.events(kind, namespace, name)]

    def log_source(
        self,
        namespace: str,
        name: str,
        component: str = PREDICTOR,
        revision: str | None = None,
        replica: str | None = None,
    ) -> LogSource:
        """Where the logs of a service's component revision are (by default its latest created revision); `revision`
        is a revision's name or number. Raises NotFound for a component, revision or replica it does not have."""
        resource = self._require(ISVC_KIND, namespace, name)
        if component not in COMPONENTS:
            raise InvalidInput(f"component: must be one of {', '.join(COMPONENTS)}, not {component!r}")
        records = self.store.revisions(namespace, name, component)
        if not records:
            raise NotFound(f"{ISVC_KIND} {namespace}/{name} has no {component}")
        if revision is None:
            latest = (resource.status.get("components") or {}).get(component, {}).get("latestCreatedRevision")
            revision = latest or records[-1].name
        else:
            matched = [r.name for r in records if revision in (r.name, str(r.number))]
            if not matched:
                raise NotFound(
                    f"{ISVC_KIND} {namespace}/{name} has no {component} revision {revision!r}; its {component}"
                    f" revisions: {', '.join(r.name for r in records)}"
                )
            revision = matched[0]
        backend = self.reconciler.backend
        running = [r.id for r in backend.replicas(revision)]
        if replica is not None and replica not in running:
            raise NotFound(
                f"revision {revision} has no replica {replica!r}; its replicas: {', '.join(running) or 'none'}"
            )
        directory = backend.log_path(revision, "replica").parent  # the backend's layout: one file per replica
        return LogSource(revision, directory, [replica] if replica else running)

    def log(self, source: LogSource, tail: int | None, follow: bool) -> AsyncIterator[bytes]:
        """The replica logs of `source`: the last `tail` lines of each (None: all), then, with `follow`, what they
        write next, until the reader goes or the controller closes."""
        return log_stream(source.directory, source.replicas, tail, follow, lambda: self._closed)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        self._require(kind, namespace, name)
        self.store.delete(kind, namespace, name)
        if kind not in _NOT_RECONCILED:
            await self.reconciler.reconcile(namespace, name)

    async def promote(self, namespace: str, name: str) -> dict[str, Any]:
        """Send all traffic to the latest revisions: the same as removing canaryTrafficPercent from the spec."""
        resource = self._require(ISVC_KIND, namespace, name)
        manifest = copy.deepcopy(resource.manifest)
        for component in manifest["spec"].values():
            component.pop("canaryTrafficPercent", None)
        self.store.put(ISVC_KIND, namespace, name, manifest)
        await self.reconciler.readmit(namespace, name)  # a rolled-back revision is promoted too
        await self.reconciler.reconcile(namespace, name)
        return self.get(ISVC_KIND, namespace, name)

    async def rollback(self, namespace: str, name: str) -> dict[str, Any]:
        self._require(ISVC_KIND, namespace, name)
        await self.reconciler.rollback(namespace, name, "rolled back by `wharf rollout rollback`")
        return self.get(ISVC_KIND, namespace, name)

    def _check_names(self, documents: list[Document], stored: list[Resource]) -> None:
        """Refuse documents whose gateway names (`NAME.NAMESPACE.domain` hosts, tag hosts such as
        `latest-NAME.NAMESPACE.domain` included) or revision names (one space on the machine: `revision_prefix`)
        another resource (of those `stored`) already takes. Clashes among stored resources alone (left by an older
        Wharf) do not block an apply."""
        hosts: dict[tuple[str, str], tuple[Resource | Document, str | None]] = {}
        prefixes: dict[str, Resource | Document] = {}
        applied = {_key(doc) for doc in documents}
        resources: list[Resource | Document] = [r for r in stored if _key(r) not in applied]
        resources += documents
        for resource in resources:
            for name, role in _gateway_names(resource.kind, resource.name):
                other, other_role = hosts.setdefault((resource.namespace, name), (resource, role))
                if _clash(resource, other, applied):
                    roles = " and ".join(r for r in (role, other_role) if r)
                    raise ConfigurationError(
                        f"{_label(resource)} and {_label(other)} would both answer at"
                        f" {name}.{resource.namespace}.{self.reconciler.domain}{f' ({roles})' if roles else ''};"
                        " rename one"
                    )
            if resource.kind != ISVC_KIND:
                continue
            for component in COMPONENTS:  # every component: a stored revision outlives its spec
                prefix = revision_prefix(resource.namespace, resource.name, component)
                other = prefixes.setdefault(prefix, resource)
                if _clash(resource, other, applied):
                    raise ConfigurationError(
                        f"{_label(resource)} and {_label(other)} would both name their revisions {prefix}-NNNNN"
                        " (outside the default namespace a revision's name joins the namespace to the service's);"
                        " rename one"
                    )

    def _require(self, kind: str, namespace: str, name: str) -> Resource:
        resource = self.store.get(kind, namespace, name)
        if resource is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return resource


def _key(resource: Resource | Document) -> tuple[str, str, str]:
    return resource.kind, resource.namespace, resource.name


def _label(resource: Resource | Document) -> str:
    return f"{resource.kind} {resource.namespace}/{resource.name}"


def _clash(resource: Resource | Document, other: Resource | Document, applied: set[tuple[str, str, str]]) -> bool:
    """Whether two resources that want one name clash in this apply: they differ, and one of them is applied."""
    return _key(other) != _key(resource) and bool(applied & {_key(resource), _key(other)})


def _gateway_names(kind: str, name: str) -> list[tuple[str, str | None]]:
    """The names a resource answers at on the gateway, each with what it is when that is not plain: its own, its
    predictor's (`NAME-predictor`, with or without a transformer, as in KServe), its explainer's (`NAME-explainer`,
    kept for one whether it has one or not), and the tag names of each
    (`latest-NAME`, `prev-NAME`)."""
    if kind in _NOT_RECONCILED:
        return []
    if kind != ISVC_KIND:
        return [(name, None)]
    named: list[tuple[str, str | None]] = [
        (name, None),
        (component_name(name, PREDICTOR), f"the predictor of {name}"),
        (component_name(name, EXPLAINER), f"the explainer of {name}"),
    ]
    return [
        *named,
        *((f"{tag}-{service}", f"the {tag} tag of {service}") for service, _ in named for tag in TAGS),
    ]


def _event(event: EventRecord) -> dict[str, Any]:
    return {
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "count": event.count,
        "firstTimestamp": timestamp(event.first),
        "lastTimestamp": timestamp(event.last),
        "involvedObject": {"kind": event.kind, "namespace": event.namespace, "name": event.name},
    }


def _canary_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The components whose canaryTrafficPercent an update changes."""
    old, new = before.get("spec") or {}, after.get("spec") or {}
    return [
        component
        for component in new
        if isinstance(new[component], dict)
        and (old.get(component) or {}).get("canaryTrafficPercent") != new[component].get("canaryTrafficPercent")
    ]
