"""OpenAPI of Wharf's kinds, generated from the spec models: every example manifest validates against it, an unknown
field or a value of the wrong type does not (objects are closed, as kubectl reads them), `kubectl explain` finds
each kind by its group-version-kind and reads descriptions, and the v2 protobuf kubectl validates with carries the
same definitions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from wharf.control.kube import openapi, openapi_v2
from wharf.control.spec import KINDS
from wharf.control.spec.manifests import SERVER_METADATA

ROOT = Path(__file__).resolve().parents[4]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
SCHEMA = "#/components/schemas/"


def document(api_version: str) -> dict[str, Any]:
    return orjson.loads(openapi.DOCUMENTS[f"apis/{api_version}"])


def closed(schema: Any) -> Any:
    """`schema` with every object that lists properties closed to others: how kubectl validates (a structural
    schema says so by listing them; JSON Schema needs `additionalProperties: false`)."""
    if isinstance(schema, dict):
        out = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    return [closed(item) for item in schema] if isinstance(schema, list) else schema


def validator(kind: str) -> jsonschema.Validator:
    api_version = KINDS[kind][0]
    group, version = api_version.split("/")
    name = f"{'.'.join(reversed(group.split('.')))}.{version}.{kind}"
    components = closed(document(api_version)["components"])
    return jsonschema.Draft202012Validator({"$ref": SCHEMA + name, "components": components})


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in KINDS:
                found.append((f"{path.relative_to(ROOT)}:{doc['metadata']['name']}", doc))
    return found


def errors(document_: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(document_["kind"]).iter_errors(document_)
    ]


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {doc["kind"] for _, doc in manifests()}
    assert kinds == set(KINDS)


@pytest.mark.parametrize(("where", "manifest"), manifests(), ids=[where for where, _ in manifests()])
def test_every_example_manifest_validates(where: str, manifest: dict[str, Any]) -> None:
    assert errors(manifest) == []


def iris() -> dict[str, Any]:
    return copy.deepcopy(next(doc for where, doc in manifests() if where.startswith("examples/isvc/sklearn-iris.yaml")))


def test_an_unknown_field_is_refused_where_it_is() -> None:
    manifest = iris()
    manifest["spec"]["predictor"]["bogusField"] = 1
    [problem] = errors(manifest)
    assert problem.startswith("spec.predictor:") and "bogusField" in problem


def test_a_wrong_type_and_a_missing_required_field_are_refused() -> None:
    manifest = iris()
    manifest["spec"]["predictor"]["minReplicas"] = "two"
    assert any(p.startswith("spec.predictor.minReplicas:") for p in errors(manifest))
    del manifest["spec"]["predictor"]
    assert any("'predictor' is a required property" in p for p in errors(manifest))


def test_what_the_server_sets_validates_so_an_object_read_back_applies() -> None:
    manifest = iris()
    manifest["metadata"] |= {
        "uid": "u",
        "resourceVersion": "7",
        "generation": 2,
        "creationTimestamp": "2024-01-01T00:00:00Z",
    }
    manifest["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    manifest["status"] = {"url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}
    assert errors(manifest) == []


def test_every_field_the_server_sets_has_its_type() -> None:
    assert SERVER_METADATA <= set(openapi._SERVER_SET_TYPES)


def test_quantities_take_numbers_or_strings() -> None:
    manifest = iris()
    manifest["spec"]["predictor"]["model"]["resources"] = {
        "requests": {"cpu": 1, "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }
    assert errors(manifest) == []


def test_each_kind_is_found_by_its_group_version_kind_with_descriptions() -> None:
    for kind, (api_version, _) in KINDS.items():
        group, version = api_version.split("/")
        schemas = document(api_version)["components"]["schemas"]
        marked = [
            s
            for s in schemas.values()
            if {"group": group, "version": version, "kind": kind} in s.get("x-kubernetes-group-version-kind", [])
        ]
        assert len(marked) == 1, kind
        assert marked[0]["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
    schemas = document("serving.kserve.io/v1beta1")["components"]["schemas"]
    predictor = schemas["io.kserve.serving.v1beta1.InferenceServiceSpec"]["properties"]["predictor"]
    assert predictor["allOf"] == [{"$ref": SCHEMA + "io.kserve.serving.v1beta1.PredictorSpec"}]
    assert predictor["description"].startswith("The predictor: exactly one of `model`")
    assert "\n" not in predictor["description"]  # kubectl wraps paragraphs itself
    assert "title" not in schemas["io.kserve.serving.v1beta1.PredictorSpec"]
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["name"] == {"type": "string"}


def test_the_patch_operation_takes_no_field_validation_so_kubectl_validates_on_the_client() -> None:
    paths = document("serving.kserve.io/v1beta1")["paths"]
    item = paths["/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "InferenceService"
    assert all(p["name"] != "fieldValidation" for p in [*item["parameters"], *patch.get("parameters", [])])
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]


def test_the_index_names_each_document_by_its_hash() -> None:
    paths = openapi.index()["paths"]
    assert set(paths) == {
        "apis/serving.kserve.io/v1beta1", "apis/serving.kserve.io/v1alpha1", "apis/wharf.dev/v1alpha1",
        "apis/sources.knative.dev/v1beta1",
    }  # fmt: skip
    for path, entry in paths.items():
        assert entry["serverRelativeURL"] == f"/openapi/v3/{path}?hash={openapi.HASHES[path]}"


def fields(message: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a protobuf message, in order (the only wire type the document uses)."""
    out, at = [], 0
    while at < len(message):
        key, at = varint(message, at)
        assert key & 7 == 2, "only length-delimited fields"
        size, at = varint(message, at)
        out.append((key >> 3, message[at : at + size]))
        at += size
    return out


def varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def test_the_v2_protobuf_carries_every_definition_with_its_properties() -> None:
    top = dict(fields(openapi_v2.PROTOBUF_DOCUMENT))
    assert top[1] == b"2.0"
    named = {}
    for _, entry in fields(top[9]):  # Definitions: NamedSchema entries
        name_and_schema = dict(fields(entry))
        named[name_and_schema[1].decode()] = name_and_schema[2]
    assert set(named) == set(openapi_v2.definitions())
    predictor = dict(fields(named["io.kserve.serving.v1beta1.PredictorSpec"]))
    properties = [dict(fields(p))[1].decode() for _, p in fields(predictor[25])]
    assert "canaryTrafficPercent" in properties and "model" in properties
    kind = [f for f in fields(named["io.kserve.serving.v1beta1.InferenceService"]) if f[0] == 31]
    extension = dict(fields(kind[0][1]))
    assert extension[1] == b"x-kubernetes-group-version-kind" and b"InferenceService" in extension[2]


def test_v2_writes_refs_and_int_or_string_the_v2_way() -> None:
    definitions = openapi_v2.definitions()
    spec = definitions["io.kserve.serving.v1beta1.InferenceServiceSpec"]["properties"]["predictor"]
    assert spec["$ref"] == "#/definitions/io.kserve.serving.v1beta1.PredictorSpec" and "allOf" not in spec
    quantity = definitions["io.kserve.serving.v1beta1.Resources"]["properties"]["requests"]["additionalProperties"]
    assert quantity == {"type": "string", "format": "int-or-string"}
