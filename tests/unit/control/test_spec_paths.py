"""Relative paths in a manifest, read from the manifest file's directory (`spec.paths`)."""

from __future__ import annotations

import os
from pathlib import Path

from wharf.control.spec import InferenceService, parse_manifests


def service(model: str, base: Path | None) -> InferenceService:
    text = (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: iris}\n"
        f"spec:\n  predictor:\n    model:\n{model}"
    )
    [parsed] = parse_manifests(text, base=base)
    assert isinstance(parsed, InferenceService)
    return parsed


def model_of(parsed: InferenceService) -> dict:
    return parsed.to_manifest()["spec"]["predictor"]["model"]


def test_a_relative_storage_uri_is_read_from_the_manifests_directory(tmp_path: Path) -> None:
    for given, resolved in [
        ("./model.joblib", tmp_path / "model.joblib"),
        ("models/iris", tmp_path / "models/iris"),
        ("../shared/model.joblib", tmp_path.parent / "shared/model.joblib"),
        ("/srv/models/iris", Path("/srv/models/iris")),
    ]:
        model = model_of(service(f"      modelFormat: {{name: sklearn}}\n      storageUri: {given}\n", tmp_path))
        assert model["storageUri"] == str(resolved)


def test_uris_and_manifests_without_a_base_stay_as_written(tmp_path: Path) -> None:
    for uri in ("gs://bucket/model", "file:///srv/model.joblib", "pvc://models/iris"):
        model = model_of(service(f"      modelFormat: {{name: sklearn}}\n      storageUri: {uri}\n", tmp_path))
        assert model["storageUri"] == uri
    unresolved = service("      modelFormat: {name: sklearn}\n      storageUri: ./model.joblib\n", None)
    assert model_of(unresolved)["storageUri"] == "./model.joblib"


def test_relative_pythonpath_entries_are_read_from_the_manifests_directory(tmp_path: Path) -> None:
    model = model_of(
        service(
            "      modelFormat: {name: custom}\n      storageUri: installed.module:Model\n"
            f"      env: [{{name: PYTHONPATH, value: 'lib{os.pathsep}/opt/code'}}]\n",
            tmp_path,
        )
    )
    assert model["env"] == [{"name": "PYTHONPATH", "value": f"{tmp_path / 'lib'}{os.pathsep}/opt/code"}]
    assert model["storageUri"] == "installed.module:Model"  # a class is no path


def test_a_class_beside_the_manifest_puts_its_directory_first_on_the_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "mymodel.py").write_text("")
    (tmp_path / "pkg").mkdir()
    custom = "      modelFormat: {name: custom}\n      storageUri: mymodel:Model\n"
    assert model_of(service(custom, tmp_path))["env"] == [{"name": "PYTHONPATH", "value": str(tmp_path)}]
    packaged = "      modelFormat: {name: custom}\n      storageUri: pkg.models:Model\n"
    packaged += "      env: [{name: PYTHONPATH, value: /opt/code}]\n"
    expected = f"{tmp_path}{os.pathsep}/opt/code"
    assert model_of(service(packaged, tmp_path))["env"] == [{"name": "PYTHONPATH", "value": expected}]
    again = f"      env: [{{name: PYTHONPATH, value: '{expected}'}}]\n"  # re-applied as stored: unchanged
    assert model_of(service(custom + again, tmp_path))["env"] == [{"name": "PYTHONPATH", "value": expected}]


def test_a_class_from_elsewhere_adds_nothing(tmp_path: Path) -> None:
    custom = "      modelFormat: {name: custom}\n      storageUri: wharf_test_models:Echo\n"
    assert model_of(service(custom, tmp_path))["env"] == []


def test_a_module_name_longer_than_the_file_system_takes_is_not_beside_the_manifest(tmp_path: Path) -> None:
    for module in ("m" * 300, "m" * 300 + ".sub", "m" * 5000):
        custom = f"      modelFormat: {{name: custom}}\n      storageUri: {module}:Model\n"
        assert model_of(service(custom, tmp_path))["env"] == []  # no ENAMETOOLONG: imported from elsewhere, if at all
