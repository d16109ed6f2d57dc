"""Who manages which fields of a resource (`metadata.managedFields`), and server-side apply's merge and conflicts.

A field is a path of map keys to a value that is not a map (a list counts as one value: Wharf's lists are atomic,
as those of a CRD without list-type markers are), or to an empty map. `apiVersion`, `kind`, `metadata.name`,
`metadata.namespace`, `status` and what the server sets are nobody's. Each manager is an entry of
`managedFields` (`manager`, `operation`, `apiVersion`, `time`, `fieldsType: FieldsV1`, `fieldsV1`); a manager
is one name with one operation, so `kubectl` applying and `kubectl` patching are two. The rules:

- An update (create, replace, patch, and Wharf's own `/apis/apply`, whose manager is `wharf`) gives its manager
  the fields whose values it changed (on a create, every field), and takes them from every other manager.
- An apply (`application/apply-patch+yaml`) names its manager's fields: those of its configuration. It conflicts
  (409, one cause per field) when it would change the value of a field another manager has; with `force=true` it
  takes those fields instead. The object becomes the live one with every field of the configuration set (maps
  merged, lists replaced), less the fields the manager applied before and no longer does, where nobody else has
  them.
- Once the object is stored (defaults filled, a framework shorthand made `model`), every manager keeps only the
  fields the object has, and one left with none goes.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]
Fields = dict[Path, Any]  # field -> its value

APPLY, UPDATE = "Apply", "Update"
_UNMANAGED_TOP = frozenset({"apiVersion", "kind", "status"})
_UNMANAGED_METADATA = frozenset(
    {
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
        "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Conflict:
    """A field an apply would change that `manager` (with `operation`, at `api_version`) has."""

    manager: str
    operation: str
    api_version: str
    time: str
    path: Path

    @property
    def field(self) -> str:
        """As Kubernetes writes it in a cause: `.spec.predictor.canaryTrafficPercent`."""
        return "".join(f".{key}" for key in self.path)

    @property
    def message(self) -> str:
        """As Kubernetes words it: `conflict with "kubectl"`, and for an update's manager with its version and time."""
        manager = json.dumps(self.manager)
        if self.operation == APPLY:
            return f"conflict with {manager}"
        return f"conflict with {manager} using {self.api_version}" + (f" at {self.time}" if self.time else "")


def fields(obj: Mapping[str, Any]) -> Fields:
    """Every managed field of an object, with its value."""
    found: Fields = {}
    for key, value in obj.items():
        if key in _UNMANAGED_TOP:
            continue
        if key == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in _UNMANAGED_METADATA}
            if not value:
                continue
        found.update(_leaves(value, (key,)))
    return found


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, Mapping) and value:
        for key, each in value.items():
            yield from _leaves(each, (*path, str(key)))
    else:
        yield path, value


def encode(paths: Iterable[Path]) -> dict[str, Any]:
    """Fields as Kubernetes' FieldsV1 (`{"f:spec": {"f:predictor": {"f:minReplicas": {}}}}`)."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def decode(tree: Mapping[str, Any], path: Path = ()) -> set[Path]:
    """The fields of a FieldsV1 tree (its leaves)."""
    found: set[Path] = set()
    for key, child in tree.items():
        if not key.startswith("f:"):
            continue
        here = (*path, key[2:])
        found |= decode(child, here) if child else {here}
    return found


def entry(manager: str, operation: str, api_version: str, paths: Iterable[Path]) -> dict[str, Any]:
    """One `managedFields` entry, timed now."""
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fieldsType": "FieldsV1",
        "fieldsV1": encode(paths),
    }


def _owned(managed: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], set[Path]]]:
    return [(e, decode(e.get("fieldsV1") or {})) for e in managed]


def _is(e: Mapping[str, Any], manager: str, operation: str) -> bool:
    return e.get("manager") == manager and e.get("operation") == operation


def updated(
    managed: Iterable[Mapping[str, Any]],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    manager: str,
    api_version: str,
) -> list[dict[str, Any]]:
    """The managers once `manager` has updated `before` (None: created it) to the stored `after`."""
    old, new = fields(before or {}), fields(after)
    missing = object()
    changed = {path for path, value in new.items() if old.get(path, missing) != value}
    result = []
    mine: set[Path] = set(changed)
    previous = None
    for e, paths in _owned(managed):
        if _is(e, manager, UPDATE):
            mine |= paths
            previous = e, paths
            continue
        kept = (paths - changed) & new.keys()
        if kept:
            result.append(_with(e, kept))
    mine &= new.keys()
    if mine:
        result.append(_renewed(previous, manager, UPDATE, api_version, mine))
    return _ordered(result)


def applied(
    live: Mapping[str, Any] | None,
    managed: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any],
    manager: str,
    force: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Conflict]]:
    """Server-side apply of `config` by `manager` onto `live` (None: a create): the object (not yet stored), its
    managers, and the conflicts (none when `force`: the fields are taken)."""
    wanted, current = fields(config), fields(live or {})
    owners = _owned(managed)
    conflicts = [
        Conflict(e.get("manager", ""), e.get("operation", ""), e.get("apiVersion", ""), e.get("time", ""), path)
        for e, paths in owners
        if not _is(e, manager, APPLY)
        for path in sorted(paths & wanted.keys())
        if path in current and current[path] != wanted[path]
    ]
    taken = {c.path for c in conflicts} if force else set()
    previous = next(((e, paths) for e, paths in owners if _is(e, manager, APPLY)), None)
    before = previous[1] if previous else set()
    others = set().union(*(paths for e, paths in owners if not _is(e, manager, APPLY)))
    obj = copy.deepcopy(dict(live or {}))
    for path in sorted(before - wanted.keys() - others):
        _remove(obj, path)
    for path, value in wanted.items():
        _set(obj, path, copy.deepcopy(value))
    for key in ("apiVersion", "kind"):
        if key in config:
            obj[key] = config[key]
    result = [_with(e, paths - taken) for e, paths in owners if not _is(e, manager, APPLY) and paths - taken]
    result.append(_renewed(previous, manager, APPLY, str(config.get("apiVersion", "")), set(wanted)))
    return obj, _ordered(result), [] if force else conflicts


def kept(managed: Iterable[Mapping[str, Any]], stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The managers of the object as stored: each with only the fields it has; one with none goes."""
    present = fields(stored).keys()
    return [_with(e, paths & present) for e, paths in _owned(managed) if paths & present]


def _ordered(managed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Managers in one order (by name and operation), so that the same ones compare equal."""
    return sorted(managed, key=lambda e: (e.get("manager", ""), e.get("operation", "")))


def _with(e: Mapping[str, Any], paths: set[Path]) -> dict[str, Any]:
    return {**e, "fieldsV1": encode(paths)}


def _renewed(
    previous: tuple[Mapping[str, Any], set[Path]] | None,
    manager: str,
    operation: str,
    api_version: str,
    paths: set[Path],
) -> dict[str, Any]:
    """The manager's entry for `paths`: its previous one (and time) when that had the same fields, so that a write
    that changes nothing leaves the managers as they were."""
    if previous is not None and previous[1] == paths and previous[0].get("apiVersion") == api_version:
        return dict(previous[0])
    return entry(manager, operation, api_version, paths)


def _set(obj: dict[str, Any], path: Path, value: Any) -> None:
    """Set a field; an empty map sets only where there is no map (it owns the map, not what others put in it)."""
    node = obj
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    if value == {} and isinstance(node.get(path[-1]), dict):
        return
    node[path[-1]] = value


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Remove a field, and the maps it leaves empty."""
    trail = [obj]
    for key in path[:-1]:
        child = trail[-1].get(key)
        if not isinstance(child, dict):
            return
        trail.append(child)
    trail[-1].pop(path[-1], None)
    for parent, key in zip(reversed(trail[:-1]), reversed(path[:-1]), strict=True):
        if parent[key]:
            break
        del parent[key]
