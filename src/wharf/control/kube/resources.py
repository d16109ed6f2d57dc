"""The Kubernetes REST verbs on Wharf's resources, over the controller: list (and watch), get, create, replace,
patch, delete, the status subresource, and the namespaces. The control API's routes (`wharf.control.api`) are thin
over these; errors are `StatusError`s (`status`).

As an API server does for a custom resource:
- a create (POST) takes the collection's apiVersion and kind, `metadata.name`, and the URL's namespace (the body's,
  when given, must be it); an existing name is `AlreadyExists` (409);
- a replace (PUT) needs the object's `metadata.resourceVersion`, and one that is not the stored one is a `Conflict`
  (409), as is a `uid` that is not the object's; a patch or an apply that carries either is held to them too;
- `status` is a subresource: what a write's body says of it is ignored, and the status is Wharf's controller's to
  write (a PUT or PATCH of `/status` is refused, 405);
- a write names its field manager (`fieldManager`; else the first word of the client's `User-Agent`, as Kubernetes
  does), an apply must; `dryRun=All` checks everything and answers what would be stored, storing nothing;
- every write is validated by Wharf's own spec models (422 `Invalid`, one cause per field) and policy, and then
  reconciled, as `wharf apply` is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from wharf.control.controller import Controller
from wharf.control.kube import fields, table
from wharf.control.kube.discovery import RESOURCES, ServedResource
from wharf.control.kube.objects import document, object_list, timestamp
from wharf.control.kube.patch import APPLY, JSON_PATCH, json_patch, merge_patch, shorthand_as_model, shorthand_wins
from wharf.control.kube.selectors import Selector
from wharf.control.kube.status import StatusError
from wharf.control.kube.watch import INITIAL_EVENTS_END, WatchEvent
from wharf.control.spec import SpecError
from wharf.control.store import Resource

JSON = "application/json"
WATCH_MEDIA_TYPE = "application/json;stream=watch"


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """What a write's query says: its field manager, `dryRun=All`, and `force` (an apply's)."""

    manager: str
    dry_run: bool = False
    force: bool = False


def write_options(
    field_manager: str | None, user_agent: str | None, dry_run: str | None, force: bool | None, apply: bool
) -> WriteOptions:
    """The options of a write's query; StatusError 400 for ones Kubernetes refuses."""
    if dry_run not in (None, "", "All"):
        raise StatusError(400, f"dryRun: {dry_run!r} is not supported: All (check, store nothing) is")
    if force is not None and not apply:
        raise StatusError(422, "force: Forbidden: may not be specified for non-apply patch")
    if apply and not field_manager:
        raise StatusError(422, "fieldManager: Required value: is required for apply patch")
    manager = field_manager or (user_agent or "").split("/")[0].strip() or "unknown"
    if len(manager) > 128:
        raise StatusError(422, "fieldManager: Too long: must have at most 128 bytes")
    return WriteOptions(manager, dry_run == "All", bool(force))


# -- reads -------------------------------------------------------------------------------------------------------


def listed(controller: Controller, served: ServedResource, namespace: str | None, selector: Selector) -> dict[str, Any]:
    """The collection's list (in `namespace`, None: every one), of what `selector` matches."""
    namespace = _narrowed(namespace, selector)
    version = controller.store.version
    items = [
        document(r)
        for r in controller.store.list(served.kind, namespace)
        if selector.matches(r.namespace, r.name, _labels(r))
    ]
    return object_list(served, items, version)


def got(controller: Controller, served: ServedResource, namespace: str, name: str) -> dict[str, Any]:
    return document(_existing(controller, served, namespace, name))


@dataclass(frozen=True, slots=True)
class Printing:
    """How a read answers: the objects, or (when `Accept` asks for one) a Table of them (`wharf.control.kube.table`)
    whose rows carry what `includeObject` says."""

    table_version: str | None = None
    include_object: str | None = None

    @classmethod
    def asked(cls, accept: str | None, include_object: str | None) -> Printing:
        return cls(table.table_version(accept or ""), include_object)

    @property
    def media_type(self) -> str:
        return table.content_type(self.table_version) if self.table_version else JSON

    def shown(self, served: ServedResource, answer: dict[str, Any], columns: bool = True) -> dict[str, Any]:
        """An object or a list as asked: itself, or its Table."""
        if self.table_version is None:
            return answer
        items = answer["items"] if "items" in answer else [answer]
        version = (answer.get("metadata") or {}).get("resourceVersion") if "items" in answer else None
        return table.table(served.kind, items, self.include_object, version, self.table_version, columns)


def watched(
    controller: Controller,
    served: ServedResource,
    namespace: str | None,
    selector: Selector,
    resource_version: str | None,
    timeout_s: float | None,
    bookmarks: bool,
    printing: Printing = Printing(),
) -> AsyncIterator[bytes]:
    """A watch's events as JSON lines (`{"type", "object"}`, each object a Table of one row when asked, the first
    with the columns); see `wharf.control.kube.watch`."""
    since = _version(resource_version)
    events = controller.changes.watch(
        served.kind, _narrowed(namespace, selector), selector, since, timeout_s or None, bookmarks
    )
    return _lines(events, served, printing)


async def _lines(events: AsyncIterator[WatchEvent], served: ServedResource, printing: Printing) -> AsyncIterator[bytes]:
    columns = True
    async for event in events:
        if event.type == "ERROR":
            shown = event.error
        elif event.type == "BOOKMARK":
            metadata: dict[str, Any] = {"resourceVersion": str(event.version)}
            if event.initial_end:
                metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
            shown = {"kind": served.kind, "apiVersion": served.group_version, "metadata": metadata}
        else:
            assert event.resource is not None
            shown = printing.shown(served, document(event.resource), columns)
            columns = False
        yield orjson.dumps({"type": event.type, "object": shown}) + b"\n"


def namespaces(controller: Controller) -> list[dict[str, Any]]:
    """The namespaces: `default`, and every one that holds a resource (created when its first one was)."""
    created: dict[str, float | None] = {"default": None}
    for kind in (served.kind for served in RESOURCES if served.group):
        for resource in controller.store.list(kind):
            first = created.get(resource.namespace)
            created[resource.namespace] = resource.created if first is None else min(first, resource.created)
    return [_namespace(name, created[name]) for name in sorted(created)]


def namespace_list(controller: Controller) -> dict[str, Any]:
    version = controller.store.version
    return {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": str(version)},
            "items": namespaces(controller)}  # fmt: skip


def namespace(controller: Controller, name: str) -> dict[str, Any]:
    found = next((n for n in namespaces(controller) if n["metadata"]["name"] == name), None)
    if found is None:
        raise StatusError(404, f'namespaces "{name}" not found', details={"name": name, "kind": "namespaces"})
    return found


def _namespace(name: str, created: float | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.namespace.wharf"))}
    if created is not None:
        metadata["creationTimestamp"] = timestamp(created)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata, "status": {"phase": "Active"}}


# -- writes ------------------------------------------------------------------------------------------------------


@dataclass
class _Edit:
    """A write of one resource (the `Edit` the controller takes): `make` proposes the object for the current one."""

    served: ServedResource
    namespace: str
    name: str
    options: WriteOptions
    make: Callable[[_Edit, Resource | None], dict[str, Any]]
    applied: list[dict[str, Any]] | None = None  # an apply's managers, once proposed
    created: bool = False  # whether it creates the resource, once proposed

    def proposed(self, current: Resource | None) -> dict[str, Any]:
        self.created = current is None
        return self.make(self, current)

    def managed(self, current: Resource | None, stored: dict[str, Any]) -> list[dict[str, Any]]:
        if self.applied is not None:
            return fields.kept(self.applied, stored)
        before = current.manifest if current else None
        managers = current.managed if current else ()
        return fields.updated(managers, before, stored, self.options.manager, self.served.group_version)


async def create(
    controller: Controller, served: ServedResource, namespace: str, body: Any, options: WriteOptions
) -> dict[str, Any]:
    obj = _identified(served, namespace, None, body)

    def make(edit: _Edit, current: Resource | None) -> dict[str, Any]:
        if current is not None:
            what = f'{_what(served)} "{edit.name}" already exists'
            raise StatusError(409, what, "AlreadyExists", _details(served, edit.name))
        return obj

    return (await _write(controller, served, namespace, obj["metadata"]["name"], options, make))[0]


async def replace(
    controller: Controller, served: ServedResource, namespace: str, name: str, body: Any, options: WriteOptions
) -> dict[str, Any]:
    obj = _identified(served, namespace, name, body)

    def make(edit: _Edit, current: Resource | None) -> dict[str, Any]:
        current = _required(served, namespace, name, current)
        if "resourceVersion" not in obj["metadata"]:
            raise StatusError(
                422,
                f'{_what(served)} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be'
                " specified for an update",
                details=_details(served, name, causes=[_cause("metadata.resourceVersion", "must be specified")]),
            )
        _check_preconditions(served, current, obj["metadata"])
        return obj

    return (await _write(controller, served, namespace, name, options, make))[0]


async def patch(
    controller: Controller,
    served: ServedResource,
    namespace: str,
    name: str,
    patch_type: str,
    body: Any,
    options: WriteOptions,
) -> tuple[dict[str, Any], bool]:
    """The object once patched, and whether the patch (an apply) created it."""
    config = _identified(served, namespace, name, body) if patch_type == APPLY else None

    def make(edit: _Edit, current: Resource | None) -> dict[str, Any]:
        if config is not None:
            return _applied(edit, current, config)
        current = _required(served, namespace, name, current)
        shown = document(current)
        patched = json_patch(shown, body) if patch_type == JSON_PATCH else merge_patch(shown, body)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise StatusError(422, f'{_what(served)} "{name}" is invalid: the patched object has no metadata')
        _check_preconditions(served, current, patched["metadata"])
        _check_identity(served, namespace, name, patched)
        return shorthand_wins(patched)

    return await _write(controller, served, namespace, name, options, make)


def _applied(edit: _Edit, current: Resource | None, config: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply (`fields.applied`) of `config`; StatusError 409 naming the conflicts."""
    if current is not None:
        _check_preconditions(edit.served, current, config["metadata"])
    live = current.manifest if current else None
    obj, managers, conflicts = fields.applied(
        live, current.managed if current else (), shorthand_as_model(config), edit.options.manager, edit.options.force
    )
    if conflicts:
        listed_ = "; ".join(f"{c.message}: {c.field}" for c in conflicts)
        raise StatusError(
            409,
            f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {listed_}",
            details=_details(
                edit.served,
                edit.name,
                causes=[{"reason": "FieldManagerConflict", "message": c.message, "field": c.field} for c in conflicts],
            ),
        )
    obj.setdefault("metadata", {}).update(name=edit.name, namespace=edit.namespace)
    edit.applied = managers
    return obj


async def _write(
    controller: Controller,
    served: ServedResource,
    namespace: str,
    name: str,
    options: WriteOptions,
    make: Callable[[_Edit, Resource | None], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """The object as written, and whether the write created it; a manifest Wharf refuses is `Invalid` (422)."""
    edit = _Edit(served, namespace, name, options, make)
    try:
        resource = await controller.write(served.kind, namespace, name, edit, options.dry_run)
    except SpecError as e:
        causes = [_cause(path, reason) for path, reason in e.problems]
        raise StatusError(
            422,
            f'{served.kind}.{served.group} "{name}" is invalid: {e.message}',
            details=_details(served, name, causes=causes),
        ) from None
    return document(resource), edit.created


async def delete(
    controller: Controller, served: ServedResource, namespace: str, name: str, body: Any, dry_run: bool
) -> dict[str, Any]:
    """Delete a resource (DeleteOptions' `preconditions` and `dryRun` honoured); the object as it was."""
    current = _existing(controller, served, namespace, name)
    options = body if isinstance(body, dict) else {}
    preconditions = options.get("preconditions") or {}
    if not isinstance(preconditions, dict):
        raise StatusError(400, "preconditions: must be a mapping of uid and resourceVersion")
    _check_preconditions(served, current, preconditions)
    shown = document(current)
    if not (dry_run or options.get("dryRun") == ["All"]):
        await controller.delete(served.kind, namespace, name)
    return shown


# -- checks ------------------------------------------------------------------------------------------------------


def _identified(served: ServedResource, namespace: str, name: str | None, body: Any) -> dict[str, Any]:
    """A write's body, checked against the URL: the collection's apiVersion and kind, the URL's name (when it has
    one; a create's body must have one) and namespace (filled in when the body has none)."""
    if not isinstance(body, dict):
        raise StatusError(400, f"the request body must be a {served.kind} object (a mapping), not {_type(body)}")
    body = dict(body)
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise StatusError(400, f"metadata: must be a mapping, not {_type(metadata)}")
    body["metadata"] = metadata = dict(metadata)
    for key, expected in (("apiVersion", served.group_version), ("kind", served.kind)):
        given = body.get(key)
        if given is None:
            body[key] = expected
        elif given != expected:
            raise StatusError(
                400, f"the {key} in the data ({given!r}) does not match the {key} of {_what(served)} ({expected!r})"
            )
    given_name = metadata.get("name")
    if name is None and not given_name:
        raise StatusError(
            422,
            f"{served.kind}.{served.group} is invalid: metadata.name: Required value: name is required"
            " (Wharf does not generate names)",
            details=_details(served, None, causes=[_cause("metadata.name", "Required value: name is required")]),
        )
    if name is not None and given_name is not None and given_name != name:
        raise StatusError(400, f"the name of the object ({given_name}) does not match the name on the URL ({name})")
    metadata["name"] = given_name or name
    _check_identity(served, namespace, metadata["name"], body)
    return body


def _check_identity(served: ServedResource, namespace: str, name: str, obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    given = metadata.setdefault("namespace", namespace)
    if given != namespace:
        raise StatusError(
            400,
            f"the namespace of the provided object ({given}) does not match the namespace sent on the request"
            f" ({namespace})",
        )
    if metadata.get("name") != name:
        raise StatusError(
            400, f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
        )
    if obj.get("apiVersion") != served.group_version or obj.get("kind") != served.kind:
        raise StatusError(400, f"apiVersion and kind: must stay {served.group_version} and {served.kind}")


def _check_preconditions(served: ServedResource, current: Resource, given: dict[str, Any]) -> None:
    """A Conflict (409) when `given` (metadata or DeleteOptions' preconditions) names another uid or version."""
    uid, version = given.get("uid"), given.get("resourceVersion")
    if uid not in (None, "", current.uid):
        raise StatusError(
            409,
            f'Operation cannot be fulfilled on {_what(served)} "{current.name}": Precondition failed: UID in'
            f" precondition: {uid}, UID in object meta: {current.uid}",
            "Conflict",
            _details(served, current.name),
        )
    if version not in (None, "") and str(version) != str(current.version):
        raise StatusError(
            409,
            f'Operation cannot be fulfilled on {_what(served)} "{current.name}": the object has been modified;'
            " please apply your changes to the latest version and try again",
            "Conflict",
            _details(served, current.name),
        )


def _existing(controller: Controller, served: ServedResource, namespace: str, name: str) -> Resource:
    return _required(served, namespace, name, controller.store.get(served.kind, namespace, name))


def _required(served: ServedResource, namespace: str, name: str, current: Resource | None) -> Resource:
    """`current`; NotFound (404) worded as Wharf's CLI words it, when there is none."""
    if current is None:
        raise StatusError(404, f"{served.kind} {namespace}/{name} not found", details=_details(served, name))
    return current


def _version(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise StatusError(400, f"resourceVersion: {text!r} is not one this server gave (a whole number)")
    return int(text)


def _narrowed(namespace: str | None, selector: Selector) -> str | None:
    """The one namespace a read covers: the URL's, else the one a field selector asks for."""
    return namespace or selector.equal("metadata.namespace")


def _labels(resource: Resource) -> dict[str, str]:
    return (resource.manifest.get("metadata") or {}).get("labels") or {}


def _what(served: ServedResource) -> str:
    """`inferenceservices.serving.kserve.io`, as Kubernetes names a collection in its messages."""
    return f"{served.plural}.{served.group}"


def _details(served: ServedResource, name: str | None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"group": served.group, "kind": served.plural}
    if name:
        details["name"] = name
    return details | extra


def _cause(path: str, message: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "message": message, "field": path}


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
