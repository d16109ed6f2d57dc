"""Request bodies of the Kubernetes routes, and patches: what a PATCH makes of the object it is sent to.

A body is JSON (`application/json`, the patch types with `json`) or YAML (`application/yaml`, server-side apply's
`application/apply-patch+yaml`), read within `safe_yaml`'s limits; one that is neither is refused (400). The patch
types, by `Content-Type`:

- `application/merge-patch+json`: RFC 7386 (what `kubectl patch --type merge`, `kubectl apply` of a custom resource
  and KServe's SDK send): maps merge, `null` removes, anything else replaces.
- `application/json-patch+json`: RFC 6902 operations (`add`, `remove`, `replace`, `move`, `copy`, `test`) on JSON
  pointers; a failing one refuses the whole patch (422 for a failed `test` or a missing path).
- `application/apply-patch+yaml`: server-side apply (`fields.applied`).
Strategic merge patch is Kubernetes' for its built-in kinds only and is refused (415) as an API server refuses it for
a custom resource, naming the types above.

A patched InferenceService whose predictor names its model both as `model` and with a framework shorthand (what
`kubectl apply` of a `sklearn:` manifest sends to a stored service, whose shorthand was made `model`) keeps the
shorthand's, which becomes its `model` again when validated: KServe's defaulting webhook does the same. A
server-side apply's configuration is read with its shorthand as `model` (`shorthand_as_model`) before it is merged,
so that its manager owns the fields the stored object has (`spec.predictor.model.storageUri`) and applying it again
changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from wharf.control.kube.status import StatusError
from wharf.control.spec import FRAMEWORKS, SpecError
from wharf.control.spec.safe_yaml import load_documents

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
STRATEGIC = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE, APPLY)


def media_type(content_type: str | None) -> str:
    """The media type of a `Content-Type` header, without its parameters, in lower case."""
    return (content_type or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None) -> Any:
    """A request body as JSON or YAML by its content type; StatusError 400 when it is not."""
    kind = media_type(content_type)
    try:
        text = body.decode()
    except UnicodeDecodeError as e:
        raise StatusError(400, f"the request body must be UTF-8 JSON or YAML ({e})") from None
    if not text.strip():
        raise StatusError(400, "the request body is empty: it must be a JSON or YAML object")
    if "json" in kind:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise StatusError(400, f"the request body is not JSON ({kind}): {e}") from None
    try:
        documents = load_documents(text, 1, "")
    except SpecError as e:
        raise StatusError(400, f"the request body is not YAML ({kind or 'untyped'}): {e.message}") from None
    return documents[0] if documents else None


def check_patch_type(content_type: str | None) -> str:
    """The patch type of a PATCH's `Content-Type`; StatusError 415 naming those taken otherwise."""
    kind = media_type(content_type)
    if kind in PATCH_TYPES:
        return kind
    why = " (Kubernetes' strategic merge is for its built-in kinds only)" if kind == STRATEGIC else ""
    raise StatusError(
        415,
        f"the body of the request was in an unknown format{why} - accepted media types include:"
        f" {', '.join(PATCH_TYPES)}",
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: `patch` merged into (a copy of) `target`."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: `operations` applied in order to a copy of `target`; StatusError when one cannot be."""
    if not isinstance(operations, list):
        raise StatusError(400, "a JSON patch is a list of operations (e.g. [{op: replace, path: /spec/x, value: 1}])")
    document = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        if not isinstance(operation, Mapping) or not isinstance(operation.get("path"), str):
            raise StatusError(400, f"JSON patch operation {index}: must be a mapping with op and path")
        document = _operation(document, operation, index)
    return document


def _operation(document: Any, operation: Mapping[str, Any], index: int) -> Any:
    op, path = operation.get("op"), operation["path"]
    where = f"JSON patch operation {index} ({op} {path})"
    if op in ("add", "replace", "test") and "value" not in operation:
        raise StatusError(400, f"{where}: needs a value")
    if op in ("move", "copy") and not isinstance(operation.get("from"), str):
        raise StatusError(400, f"{where}: needs from")
    if op == "add":
        return _add(document, _pointer(path, where), copy.deepcopy(operation["value"]), where)
    if op == "remove":
        return _remove(document, _pointer(path, where), where)[0]
    if op == "replace":
        document, _ = _remove(document, _pointer(path, where), where)
        return _add(document, _pointer(path, where), copy.deepcopy(operation["value"]), where)
    if op == "move":
        document, value = _remove(document, _pointer(operation["from"], where), where)
        return _add(document, _pointer(path, where), value, where)
    if op == "copy":
        value = _get(document, _pointer(operation["from"], where), where)
        return _add(document, _pointer(path, where), copy.deepcopy(value), where)
    if op == "test":
        if _get(document, _pointer(path, where), where) != operation["value"]:
            raise StatusError(422, f"{where}: the value there is not the one tested")
        return document
    raise StatusError(400, f"{where}: op must be add, remove, replace, move, copy or test")


def _pointer(path: str, where: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise StatusError(400, f"{where}: a JSON pointer starts with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, parts: list[str], where: str) -> Any:
    node = document
    for part in parts[:-1]:
        node = _child(node, part, where)
    return node


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    raise StatusError(422, f"{where}: the path does not exist")


def _get(document: Any, parts: list[str], where: str) -> Any:
    return _child(_parent(document, parts, where), parts[-1], where) if parts else document


def _add(document: Any, parts: list[str], value: Any, where: str) -> Any:
    if not parts:
        return value
    parent, last = _parent(document, parts, where), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (last == "-" or (last.isdigit() and int(last) <= len(parent))):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        raise StatusError(422, f"{where}: the path does not exist")
    return document


def _remove(document: Any, parts: list[str], where: str) -> tuple[Any, Any]:
    if not parts:
        return None, document
    parent = _parent(document, parts, where)
    value = _child(parent, parts[-1], where)
    if isinstance(parent, dict):
        del parent[parts[-1]]
    else:
        del parent[int(parts[-1])]
    return document, value


def shorthand_wins(obj: Any) -> Any:
    """`obj`, whose predictor keeps only its framework shorthand when it has `model` too (the module docstring)."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    if isinstance(predictor, dict) and "model" in predictor:
        if sum(predictor.get(f) is not None for f in FRAMEWORKS) == 1:
            del predictor["model"]
    return obj


def shorthand_as_model(obj: Any) -> Any:
    """`obj` (a copy, when changed) whose predictor's framework shorthand is written as `model` with that format,
    as validation writes it."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    given = [f for f in FRAMEWORKS if isinstance(predictor, dict) and isinstance(predictor.get(f), dict)]
    if len(given) != 1:
        return obj
    assert isinstance(predictor, dict)
    predictor = {k: v for k, v in predictor.items() if k not in (given[0], "model")}
    predictor["model"] = {**obj["spec"]["predictor"][given[0]], "modelFormat": {"name": given[0]}}
    return {**obj, "spec": {**obj["spec"], "predictor": predictor}}
