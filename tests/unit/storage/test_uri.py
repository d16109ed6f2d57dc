"""Model URIs: schemes, local paths (pvc:// included) and redaction of credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings
from wharf.storage.uri import local_path, model_name, redact, scheme, without_userinfo

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("model.joblib", ""),
        ("/srv/models/iris", ""),
        ("C:\\models\\iris.joblib", ""),
        ("file:///srv/iris", "file"),
        ("pvc://models/iris", "pvc"),
        ("HTTPS://host/x.joblib", "https"),
        ("s3://bucket/iris/", "s3"),
        ("gs://bucket/iris", "gs"),
        ("az://container/iris", "az"),
    ],
)
def test_scheme(uri: str, expected: str) -> None:
    assert scheme(uri) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pa@ss@host:8443/m/model.tgz?X-Amz-Signature=abc#frag", "https://host:8443/m/model.tgz"),
        ("s3://key:secret@bucket/iris/", "s3://bucket/iris/"),
        ("az://container/m.onnx?sv=2024&sig=xyz", "az://container/m.onnx"),
        ("500, message='Oops', url='http://u:p@h/a?token=t'", "500, message='Oops', url='http://h/a'"),
        ("/srv/models/iris", "/srv/models/iris"),
    ],
)
def test_redact_removes_userinfo_and_query(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_without_userinfo_keeps_the_query() -> None:
    assert without_userinfo("https://u:p@host/m.joblib?v=2") == "https://host/m.joblib?v=2"


def test_local_paths(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"x")
    settings = StorageSettings(storage_cache_dir=tmp_path / "cache")
    assert local_path(str(tmp_path / "model.joblib"), settings) == tmp_path / "model.joblib"
    assert local_path(f"file://{tmp_path}", settings) == tmp_path
    with pytest.raises(ConfigurationError, match="does not exist"):
        local_path(str(tmp_path / "missing.joblib"), settings)


def test_pvc_maps_under_the_configured_root(tmp_path: Path) -> None:
    (tmp_path / "models" / "iris").mkdir(parents=True)
    settings = StorageSettings(pvc_root=tmp_path)
    assert local_path("pvc://models/iris", settings) == tmp_path / "models" / "iris"
    assert local_path("pvc://models", settings) == tmp_path / "models"
    with pytest.raises(ConfigurationError, match="inside a volume"):
        local_path("pvc://models/../../etc", settings)


def test_pvc_needs_a_root() -> None:
    with pytest.raises(ConfigurationError, match="WHARF_PVC_ROOT"):
        local_path("pvc://models/iris", StorageSettings(pvc_root=None))


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models/iris.joblib", "iris"),
        ("s3://bucket/iris/model.joblib", "model"),
        ("https://host/x/resnet.tar.gz?X-Amz-Signature=se.cret", "resnet"),
        ("http://host/models/bert.zip", "bert"),
        ("gs://bucket/models/sentiment/", "sentiment"),
    ],
)
def test_default_model_name_leaves_out_query_and_archive_suffix(uri: str, name: str) -> None:
    assert model_name(uri) == name
