"""OpenAPI v2 of Wharf's kinds, in the protobuf encoding kubectl reads: what `kubectl apply` (and `create`,
`replace`) validate a manifest against on the client, before anything is sent.

kubectl (1.27 and later, with `--validate=strict`, its default) first asks the OpenAPI v3 document whether the
server validates fields itself (a `fieldValidation` parameter on the kind's PATCH operation); Wharf's document
says no, so that a manifest is checked on the client too, `--dry-run=client` included, against the v2 schemas at
`GET /openapi/v2` (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). kubectl then names an
unknown field as `unknown field "spec.predictor.bogus"`, a missing required one, or a value of the wrong type.

The definitions are the v3 document's schemas (`openapi.DOCUMENTS`), written the v2 way: `#/definitions/` refs, a
ref with a description as a plain `$ref`, int-or-string as a string (kubectl takes a number for a string), and
`x-kubernetes-*` extensions as YAML. The document carries no paths: kubectl then patches Wharf's kinds with JSON
merge patches, as it does any custom resource. Encoded once, at import, with the few protobuf wire rules the
message needs (gnostic's `openapi.v2.Document`, whose field numbers are listed below); served as bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from wharf.control.kube.openapi import DOCUMENTS

MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # asked for; Go cannot parse it back:
CONTENT_TYPE = "application/octet-stream"  # so the answer says this, as Kubernetes' own does
PATH = "/openapi/v2"

# gnostic's openapi.v2 field numbers, of the fields written here
_DOCUMENT_SWAGGER, _DOCUMENT_INFO, _DOCUMENT_PATHS, _DOCUMENT_DEFINITIONS = 1, 2, 8, 9
_INFO_TITLE, _INFO_VERSION = 1, 2
_NAMED_NAME, _NAMED_VALUE = 1, 2  # NamedSchema, NamedAny
_ANY_YAML = 2
_REPEATED = 1  # Definitions, Properties, TypeItem and ItemsItem hold their one repeated field here
_ADDITIONAL_SCHEMA = 1  # AdditionalPropertiesItem's schema
_SCHEMA = {
    "$ref": 1, "format": 2, "description": 4, "required": 19, "additionalProperties": 21, "type": 22, "items": 23,
    "properties": 25, "vendor_extension": 31,
}  # fmt: skip


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string or an embedded message."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode())


def _named(name: str, value: bytes) -> bytes:
    return _text(_NAMED_NAME, name) + _field(_NAMED_VALUE, value)


def _v2(schema: dict[str, Any]) -> dict[str, Any]:
    """A v3 schema of `openapi` as v2 writes it (see the module's docstring)."""
    if "allOf" in schema and len(schema["allOf"]) == 1 and "$ref" in schema["allOf"][0]:
        schema = {**{k: v for k, v in schema.items() if k != "allOf"}, "$ref": schema["allOf"][0]["$ref"]}
    if schema.get("x-kubernetes-int-or-string"):
        return {"type": "string", "format": "int-or-string", **_kept(schema, ("description",))}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key == "properties":
            out[key] = {name: _v2(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _v2(value)
        elif key in ("type", "format", "description", "required") or key.startswith("x-kubernetes-"):
            out[key] = value
    return out


def _kept(schema: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: schema[k] for k in keys if k in schema}


def _schema(schema: dict[str, Any]) -> bytes:
    """One `openapi.v2.Schema` message."""
    out = b""
    for key in ("$ref", "format", "description"):
        if key in schema:
            out += _text(_SCHEMA[key], schema[key])
    for name in schema.get("required", ()):
        out += _text(_SCHEMA["required"], name)
    if "additionalProperties" in schema:
        item = _field(_ADDITIONAL_SCHEMA, _schema(schema["additionalProperties"]))
        out += _field(_SCHEMA["additionalProperties"], item)
    if "type" in schema:
        out += _field(_SCHEMA["type"], _text(_REPEATED, schema["type"]))
    if "items" in schema:
        out += _field(_SCHEMA["items"], _field(_REPEATED, _schema(schema["items"])))
    if "properties" in schema:
        named = b"".join(_field(_REPEATED, _named(n, _schema(s))) for n, s in schema["properties"].items())
        out += _field(_SCHEMA["properties"], named)
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            yaml = _field(_ANY_YAML, json.dumps(value).encode())  # JSON is YAML
            out += _field(_SCHEMA["vendor_extension"], _named(key, yaml))
    return out


def definitions() -> dict[str, dict[str, Any]]:
    """Every schema of every group version's v3 document, as v2 definitions."""
    found: dict[str, dict[str, Any]] = {}
    for document in DOCUMENTS.values():
        found |= {name: _v2(s) for name, s in orjson.loads(document)["components"]["schemas"].items()}
    return dict(sorted(found.items()))


def document() -> dict[str, Any]:
    """The v2 document, as JSON would carry it."""
    return {"swagger": "2.0", "info": {"title": "Wharf", "version": "v1"}, "paths": {}, "definitions": definitions()}


def encode(doc: dict[str, Any]) -> bytes:
    """`doc` (as `document` makes it) as an `openapi.v2.Document` message."""
    info = _text(_INFO_TITLE, doc["info"]["title"]) + _text(_INFO_VERSION, doc["info"]["version"])
    named = b"".join(_field(_REPEATED, _named(n, _schema(s))) for n, s in doc["definitions"].items())
    return (
        _text(_DOCUMENT_SWAGGER, doc["swagger"])
        + _field(_DOCUMENT_INFO, info)
        + _field(_DOCUMENT_PATHS, b"")
        + _field(_DOCUMENT_DEFINITIONS, named)
    )


JSON_DOCUMENT = orjson.dumps(document())
PROTOBUF_DOCUMENT = encode(orjson.loads(JSON_DOCUMENT))
