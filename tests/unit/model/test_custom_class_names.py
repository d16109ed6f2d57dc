"""Which model URIs the model server imports as `module:Class`: exactly those the control plane's spec and policy
treat as custom code (tests/unit/control/test_policy.py checks that both sides agree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.errors import ConfigurationError
from wharf.model.repository import source_factory
from wharf.model.runtimes.custom import names_class

CLASSES = ["fraud.models:FraudModel", "m:Evil", "s3:Model", "file:Model", "gs:Model", "pvc:Model", "az:Model",
           "https:Model", "HTTP:Model"]  # fmt: skip
NOT_CLASSES = ["s3://b/m.joblib", "file:///srv/m.joblib", "models/iris.joblib", "./m:Evil", "dir/m:Evil",
               "m:Evil\n", "m:", ":Evil", "1m:Evil", "m:Evil.x", "https://example.com/m:Model"]  # fmt: skip


@pytest.mark.parametrize("uri", CLASSES)
def test_a_class_path_is_imported_whatever_scheme_it_looks_like(uri: str) -> None:
    fetched: list[str] = []
    factory = source_factory(uri, "m", "sklearn", lambda u: fetched.append(u) or Path("."))
    with pytest.raises(ConfigurationError, match="cannot import model class"):
        factory()
    assert names_class(uri) and fetched == []


@pytest.mark.parametrize("uri", NOT_CLASSES)
def test_anything_else_is_an_artifact(uri: str) -> None:
    assert not names_class(uri)


def test_a_file_named_like_a_class_is_still_a_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading never depends on the file system (the control plane cannot see the replica's), so a file of
    that name is served as ./name:Class."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m:Evil").write_text("")
    assert names_class("m:Evil") and not names_class("./m:Evil")
