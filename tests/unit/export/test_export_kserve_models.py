"""Every object `wharf export` writes, read by the typed models of KServe's own SDK (`kserve.V1beta1InferenceService`,
`V1alpha1ClusterServingRuntime`, `V1alpha1InferenceGraph` and the Kubernetes models inside them): each field must be
one the model knows (by its wire name), each value of the model's type, and each model must accept its fields (the
SDK's client-side validation: required fields, enumerations). The SDK's own deserializer would skip an unknown
field, so the walk is strict where it is not.

kserve cannot be imported beside Wharf's generated protobuf modules (both register `inference.*`), so the check
runs in a fresh interpreter: this file, run as a script on a JSON file of objects, prints each problem and exits 1.
So it imports nothing of Wharf's at the top: the tests import what they export.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TOP_LEVEL = {
    "InferenceService": "V1beta1InferenceService",
    "ClusterServingRuntime": "V1alpha1ClusterServingRuntime",
    "InferenceGraph": "V1alpha1InferenceGraph",
}


def problems_of(objects: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    """What KServe's typed models find wrong in `objects` (checked in a fresh interpreter)."""
    file = tmp_path / "objects.json"
    file.write_text(json.dumps(objects))
    run = subprocess.run([sys.executable, __file__, str(file)], capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 1), run.stderr
    return run.stdout.splitlines()


def test_every_exported_object_is_one_kserves_typed_models_read(tmp_path: Path) -> None:
    from tests.unit.export.test_export_kserve import RICH_GRAPH, RICH_SERVICE, service
    from wharf.export import kserve, runtime

    grpc = service("digits", predictor={"onnx": {"storageUri": "s3://m/digits.onnx", "protocolVersion": "grpc-v2"}})
    serving, services = kserve.services([RICH_SERVICE, service(), grpc])
    objects = [
        runtime.cluster_serving_runtime(serving),
        *(e.manifest for e in services),
        kserve.inference_graph(RICH_GRAPH).manifest,
    ]
    assert problems_of(objects, tmp_path) == []


def test_every_example_exports_or_is_refused_and_kserves_typed_models_read_each_export(tmp_path: Path) -> None:
    from tests.processes import ROOT
    from wharf.control.spec import InferenceGraph, InferenceService, parse_manifests
    from wharf.errors import ConfigurationError
    from wharf.export import kserve, runtime

    objects, refused = [], []
    for file in sorted((ROOT / "examples" / "isvc").glob("*.yaml")):
        for manifest in parse_manifests(file.read_text(), base=file.parent):
            document = manifest.to_manifest()
            try:
                if isinstance(manifest, InferenceService):
                    serving, [exported] = kserve.services([document])
                    objects.append(runtime.cluster_serving_runtime(serving))
                elif isinstance(manifest, InferenceGraph):
                    exported = kserve.inference_graph(document)
                else:  # another kind: not exported
                    continue
            except ConfigurationError:
                refused.append(file.name)
                continue
            objects.append(exported.manifest)
    assert refused == [  # custom Python classes, and the SHAP explainer
        "custom-transformer.yaml", "explainer-shap.yaml", "transformer-image.yaml", "transformer-text.yaml"
    ]  # fmt: skip
    assert len(objects) > 20 and problems_of(objects, tmp_path) == []


def test_the_check_finds_an_unknown_field_a_wrong_type_and_a_missing_required_one(tmp_path: Path) -> None:
    from tests.unit.export.test_export_kserve import service
    from wharf.export import kserve

    _, [exported] = kserve.services([service()])
    manifest = exported.manifest
    manifest["spec"]["predictor"]["bogus"] = 1
    manifest["spec"]["predictor"]["minReplicas"] = "1"
    manifest["spec"]["predictor"]["model"]["env"] = [{"value": "no name"}]
    assert sorted(problems_of([manifest], tmp_path)) == [
        "InferenceService iris: spec.predictor.bogus: unknown field of V1beta1PredictorSpec",
        "InferenceService iris: spec.predictor.minReplicas: '1' is not a int",
        "InferenceService iris: spec.predictor.model.env[0]: V1EnvVar refuses it: Invalid value for `name`,"
        " must not be `None`",
    ]


# -- the check, run in a fresh interpreter -------------------------------------------------------------------------


def _check(type_name: str, value: Any, at: str, found: list[str]) -> None:
    """Append to `found` what is wrong with `value` as a `type_name` (an openapi-generator type string)."""
    if type_name.startswith("list[") or type_name.startswith("dict("):
        inner = type_name[5:-1] if type_name.startswith("list[") else type_name.split(",", 1)[1][:-1].strip()
        if type_name.startswith("list[") and isinstance(value, list):
            for i, item in enumerate(value):
                _check(inner, item, f"{at}[{i}]", found)
        elif type_name.startswith("dict(") and isinstance(value, dict):
            for key, item in value.items():
                _check(inner, item, f"{at}.{key}", found)
        else:
            found.append(f"{at}: {value!r} is not a {type_name}")
        return
    plain = {"str": str, "int": int, "float": (int, float), "bool": bool, "ResourceQuantity": (str, int, float)}
    if type_name == "object":
        return
    if type_name in plain:
        if not isinstance(value, plain[type_name]) or (type_name != "bool" and isinstance(value, bool)):
            found.append(f"{at}: {value!r} is not a {type_name}")
        return
    import kserve
    import kubernetes.client

    model = getattr(kserve, type_name, None) or getattr(kubernetes.client, type_name)
    if not isinstance(value, dict):
        found.append(f"{at}: {value!r} is not a {type_name}")
        return
    by_wire = {wire: attribute for attribute, wire in model.attribute_map.items()}
    for wire, item in value.items():
        if wire not in by_wire:
            found.append(f"{at}.{wire}: unknown field of {type_name}")
        else:
            _check(model.openapi_types[by_wire[wire]], item, f"{at}.{wire}", found)
    try:
        model(**{by_wire[wire]: item for wire, item in value.items() if wire in by_wire})
    except ValueError as e:
        found.append(f"{at}: {type_name} refuses it: {e}")


def main(file: str) -> int:
    import kserve

    found: list[str] = []
    for document in json.loads(Path(file).read_text()):
        label = f"{document['kind']} {document['metadata']['name']}"
        problems: list[str] = []
        model = getattr(kserve, TOP_LEVEL[document["kind"]])
        by_wire = {wire: attribute for attribute, wire in model.attribute_map.items()}
        for field, value in document.items():  # apiVersion, kind, metadata, spec
            if field not in by_wire:
                problems.append(f"{field}: unknown field of {model.__name__}")
            else:
                _check(model.openapi_types[by_wire[field]], value, field, problems)
        found += [f"{label}: {problem}" for problem in problems]
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
