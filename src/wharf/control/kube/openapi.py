"""OpenAPI v3 of Wharf's Kubernetes API, generated from the spec models the control plane validates with (one
source of truth): what `kubectl explain isvc.spec.predictor` prints, and what `kubectl apply` validates against.

- `GET /openapi/v3`: the index, one entry per group version, each a server-relative URL with the document's hash.
- `GET /openapi/v3/apis/serving.kserve.io/v1beta1` (and `.../v1alpha1`): the kinds of that version under
  `components.schemas`, each top-level one marked with `x-kubernetes-group-version-kind`, and their paths. The PATCH operations take no
  `fieldValidation` parameter and no strategic merge patch: so kubectl validates a manifest on the client
  (`openapi_v2`) and patches with JSON merge patches.

The pydantic JSON Schemas become the structural OpenAPI 3.0 schemas Kubernetes writes: an optional field is its
type (no `null`), a `$ref` with a default or description sits in `allOf`, a mapping of anything is
`x-kubernetes-preserve-unknown-fields`, a constant is a one-value `enum`, a quantity (cpu, memory) is
`x-kubernetes-int-or-string`, titles go, and a field that names a model and says nothing of its own carries that
model's description (docstrings, each paragraph on one line). Every object schema is closed, as the spec models are (kubectl reports
a field that is not in it as unknown). `metadata` is Kubernetes' ObjectMeta as far as a manifest gives it, plus the
fields the server sets (kept so that an object read back validates); `status` is the server's and open.

The documents are built once, at import, and served as bytes; a client that sends the index's `hash` may cache the
answer for good (`Cache-Control: immutable`, as the Kubernetes API server answers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

import orjson
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from wharf.control.kube.discovery import RESOURCES, ServedResource
from wharf.control.spec.common import Quantities, TopLevelResource
from wharf.control.spec.manifests import KINDS, SERVER_METADATA

INDEX_PATH = "/openapi/v3"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_QUANTITIES = get_args(Quantities)[1].func  # the validator that marks a mapping of Kubernetes quantities
#: The types of the object metadata fields the server sets (as Kubernetes' ObjectMeta has them; one not here takes
#: any value).
_SERVER_SET_TYPES: dict[str, dict[str, Any]] = {
    "uid": {"type": "string"},
    "resourceVersion": {"type": "string"},
    "creationTimestamp": {"type": "string", "format": "date-time"},
    "deletionTimestamp": {"type": "string", "format": "date-time"},
    "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
    "generation": {"type": "integer", "format": "int64"},
    "selfLink": {"type": "string"},
    "managedFields": {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
_STATUS = {
    "description": "What the server observes: URL, conditions, revisions and traffic (set by Wharf, not applied).",
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
}


class _KubeSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with the two things only the core schema knows: an optional field is just its type,
    and a mapping of quantities takes numbers or strings."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        if schema["function"].get("function") is _QUANTITIES:
            quantity = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
            return {"type": "object", "additionalProperties": quantity}
        return super().function_before_schema(schema)


def _reversed(group: str) -> list[str]:
    return list(reversed(group.split(".")))


def _name(resource: ServedResource, model: str) -> str:
    if model == "ObjectMeta":
        return f"{META}.ObjectMeta"
    return ".".join([*_reversed(resource.group), resource.version, model])


@dataclass(frozen=True, slots=True)
class _Defs:
    """What a schema's refs point at: each pydantic definition's name in the document, and its description (which a
    field that refers to it and says nothing of its own shows in `kubectl explain`)."""

    names: dict[str, str]
    descriptions: dict[str, str]

    def ref(self, ref: str) -> str:
        return "#/components/schemas/" + self.names[ref.rpartition("/")[2]]

    def described(self, field: dict[str, Any], ref: str | None) -> dict[str, Any]:
        said = self.descriptions.get(ref.rpartition("/")[2]) if ref else None
        return {**field, "description": said} if said and "description" not in field else field


def _unwrapped(text: str) -> str:
    """A docstring's paragraphs, each on one line (kubectl wraps them to the terminal)."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


def _structural(schema: Any, defs: _Defs) -> Any:
    """A pydantic JSON Schema (a part of one) as a structural OpenAPI 3.0 schema (see the module's docstring)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _structural(defs.described(s, s.get("$ref")), defs) for name, s in value.items()}
        elif key in ("items", "not"):
            out[key] = _structural(value, defs)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_structural(s, defs) for s in value]
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _structural(value, defs)
            # False: every object schema is closed already
        elif key == "const":
            out["enum"] = [value]
        elif key == "$ref":
            out[key] = defs.ref(value)
        elif key == "description":
            out[key] = _unwrapped(value)
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:  # OpenAPI 3.0 ignores a $ref's siblings: Kubernetes puts it in allOf
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _kind_schemas(resource: ServedResource, model: type[TopLevelResource]) -> dict[str, Any]:
    """The schemas of one kind and of everything its spec names, by their names in the document."""
    generated = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_KubeSchema)
    defs = generated.pop("$defs", {})
    defs["ObjectMeta"]["description"] = "Kubernetes' object metadata: what a manifest gives, and what the server sets."
    found = _Defs(
        {name: _name(resource, name) for name in defs},
        {n: d["description"] for n, d in defs.items() if "description" in d},
    )
    schemas = {found.names[name]: _structural(schema, found) for name, schema in defs.items()}
    schemas[f"{META}.ObjectMeta"]["properties"] |= {
        field: _SERVER_SET_TYPES.get(field, {}) for field in sorted(SERVER_METADATA)
    }
    kind = _structural(generated, found)
    kind["properties"]["status"] = _STATUS
    kind["description"] = f"KServe's {resource.kind}, as Wharf serves it."
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    kind["x-kubernetes-group-version-kind"] = [gvk]
    listed = {
        "description": f"A list of {resource.kind}s.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{_name(resource, resource.kind)}"}},
        },
        "x-kubernetes-group-version-kind": [{**gvk, "kind": f"{resource.kind}List"}],
    }
    return {**schemas, _name(resource, resource.kind): kind, _name(resource, f"{resource.kind}List"): listed}


def _operation(resource: ServedResource, action: str, verb: str, ref: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    return {
        "operationId": f"{verb}{resource.kind}",
        "responses": {"200": {"description": "OK", "content": content}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
    }


def _paths(resource: ServedResource) -> dict[str, Any]:
    kind, listed = _name(resource, resource.kind), _name(resource, f"{resource.kind}List")
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{kind}"}}}}
    namespace = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    collection = f"/apis/{resource.group_version}/namespaces/{{namespace}}/{resource.plural}"
    patch = _operation(resource, "patch", "patch", kind)
    patch["requestBody"] = {"required": True, "content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}}
    return {
        f"/apis/{resource.group_version}/{resource.plural}": {
            "get": _operation(resource, "list", "list", listed),
        },
        collection: {
            "parameters": [namespace],
            "get": _operation(resource, "list", "listNamespaced", listed),
            "post": {**_operation(resource, "post", "createNamespaced", kind), "requestBody": body},
        },
        f"{collection}/{{name}}": {
            "parameters": [name, namespace],
            "get": _operation(resource, "get", "readNamespaced", kind),
            "put": {**_operation(resource, "put", "replaceNamespaced", kind), "requestBody": body},
            "patch": patch,
            "delete": _operation(resource, "delete", "deleteNamespaced", kind),
        },
    }


_PATCH_TYPES = ("application/merge-patch+json", "application/apply-patch+yaml")


def group_version_document(resources: Iterable[ServedResource]) -> dict[str, Any]:
    """The OpenAPI v3 document of one group version's resources."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for resource in resources:
        schemas |= _kind_schemas(resource, KINDS[resource.kind][1])
        paths |= _paths(resource)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Wharf", "version": "v1"},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _documents() -> dict[str, bytes]:
    """`apis/GROUP/VERSION` -> its document, for every group version of Wharf's own kinds."""
    served = [r for r in RESOURCES if r.kind in KINDS]
    versions = dict.fromkeys(r.group_version for r in served)
    return {
        f"apis/{gv}": orjson.dumps(group_version_document(r for r in served if r.group_version == gv))
        for gv in versions
    }


DOCUMENTS = _documents()
HASHES = {path: hashlib.sha512(document).hexdigest()[:64].upper() for path, document in DOCUMENTS.items()}


def index() -> dict[str, Any]:
    """`GET /openapi/v3`: where each group version's document is, with its hash."""
    return {
        "paths": {path: {"serverRelativeURL": f"{INDEX_PATH}/{path}?hash={digest}"} for path, digest in HASHES.items()}
    }
