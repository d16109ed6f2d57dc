"""What the control API does: apply manifests, read and delete resources, promote and roll back.

An apply reads and checks its text off the event loop (a large or hostile manifest must not stall the replicas'
supervision), one apply at a time (the machine's caps count what is stored).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from wharf.control.graph_plan import GRAPH_KIND, graph_nodes
from wharf.control.plan import (
    ISVC_KIND,
    PREDICTOR,
    TRANSFORMER,
    Document,
    component_name,
    parse,
    service_plan,
    unserved_fields,
)
from wharf.control.policy import ManifestPolicy
from wharf.control.reconciler import Reconciler
from wharf.control.spec import SpecError
from wharf.control.store import Resource, Store, revision_prefix
from wharf.errors import ConfigurationError, NotFound


class Controller:
    def __init__(self, store: Store, reconciler: Reconciler, policy: ManifestPolicy | None = None) -> None:
        """`policy` (what a manifest may do) defaults to the one the environment sets (WHARF_POLICY_*)."""
        self.store = store
        self.reconciler = reconciler
        self.metrics = reconciler.metrics
        self.policy = policy if policy is not None else ManifestPolicy()
        self._applying = asyncio.Lock()

    async def apply(self, text: str) -> list[dict[str, str]]:
        """Store every document (all are checked before any is stored), then reconcile the changed ones."""
        async with self._applying:
            documents = await asyncio.to_thread(self._checked, text)
            stored = [r for kind in (ISVC_KIND, GRAPH_KIND) for r in self.store.list(kind)]
            self._check_names(documents, stored)
            self._check_room(documents, stored)
            results, changed = [], []
            for doc in documents:
                before = self.store.get(doc.kind, doc.namespace, doc.name)
                _, was_changed = self.store.put(doc.kind, doc.namespace, doc.name, doc.manifest)
                if (
                    before is not None
                    and doc.kind == ISVC_KIND
                    and (retried := _canary_changes(before.manifest, doc.manifest))
                ):
                    await self.reconciler.readmit(doc.namespace, doc.name, retried)  # a new canary percent: retry it
                results.append(
                    {
                        "kind": doc.kind,
                        "namespace": doc.namespace,
                        "name": doc.name,
                        "result": "unchanged" if not was_changed else "configured" if before else "created",
                    }
                )
                if was_changed:
                    changed.append(doc)
        for doc in changed:
            await self.reconciler.reconcile(doc.namespace, doc.name)
        return results

    def _checked(self, text: str) -> list[Document]:
        """The documents of `text`, once each is valid, runs here and the policy allows it; raises
        ConfigurationError (SpecError) otherwise. Reads no store: it runs in a worker thread."""
        documents = parse(text, self.policy.max_documents, ManifestPolicy.setting("max_documents"))
        for doc in documents:
            if doc.kind == GRAPH_KIND:
                graph_nodes(doc.manifest)  # raises on conditions or steps the gateway cannot run
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
            for path, reason in self.policy.problems(doc.resource)
        ]
        if problems:
            raise SpecError(problems)
        return documents

    def _check_room(self, documents: list[Document], stored: list[Resource]) -> None:
        """Refuse documents that would take the machine past its count of InferenceServices and InferenceGraphs,
        unless the apply adds none (the machine held more before the cap was lowered). Its replicas are the
        reconciler's cap: a revision runs what room the others leave it, and says so in its status."""
        applied = {_key(doc) for doc in documents}
        resources = len(stored) + len(applied - {_key(r) for r in stored})
        if resources > len(stored) and (too_many := self.policy.too_many_resources(resources)):
            raise ConfigurationError(too_many)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [_document(r) for r in self.store.list(kind, namespace)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return _document(self._require(kind, namespace, name))

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        self._require(kind, namespace, name)
        self.store.delete(kind, namespace, name)
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
        """Refuse documents whose gateway names (`NAME.NAMESPACE.domain` hosts) or revision names (one space on
        the machine: `revision_prefix`) another resource (of those `stored`) already takes."""
        owners: dict[tuple[str, str], str] = {}
        revision_owners: dict[str, str] = {}
        applied = {_key(doc) for doc in documents}
        resources: list[Resource | Document] = [r for r in stored if _key(r) not in applied]
        resources += documents
        for resource in resources:
            owner = f"{resource.kind} {resource.namespace}/{resource.name}"
            for name in _gateway_names(resource.kind, resource.name, resource.manifest):
                other = owners.setdefault((resource.namespace, name), owner)
                if other != owner:
                    raise ConfigurationError(
                        f"{owner} and {other} would both answer at"
                        f" {name}.{resource.namespace}.{self.reconciler.domain}; rename one"
                    )
            if resource.kind != ISVC_KIND:
                continue
            for component in (PREDICTOR, TRANSFORMER):  # every component: a stored revision outlives its spec
                prefix = revision_prefix(resource.namespace, resource.name, component)
                other = revision_owners.setdefault(prefix, owner)
                if other != owner:
                    raise ConfigurationError(
                        f"{owner} and {other} would both name their revisions {prefix}-NNNNN"
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


def _gateway_names(kind: str, name: str, manifest: dict[str, Any]) -> list[str]:
    """The names a resource answers at on the gateway: its own, and its predictor's behind a transformer."""
    has_transformer = kind == ISVC_KIND and manifest["spec"].get("transformer")
    return [name, component_name(name, PREDICTOR)] if has_transformer else [name]


def _document(resource: Resource) -> dict[str, Any]:
    status = {k: v for k, v in resource.status.items() if k not in ("rollout", "routing")}
    return {**resource.manifest, "status": status}


def _canary_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The components whose canaryTrafficPercent an update changes."""
    old, new = before.get("spec") or {}, after.get("spec") or {}
    return [
        component
        for component in new
        if isinstance(new[component], dict)
        and (old.get(component) or {}).get("canaryTrafficPercent") != new[component].get("canaryTrafficPercent")
    ]
