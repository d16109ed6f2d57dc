"""Recognising artifacts: KServe's file names, content told apart by the first bytes, version directories."""

from pathlib import Path

import pytest

from wharf.errors import ConfigurationError, ModelLoadError
from wharf.model import runtimes
from wharf.model.runtimes.signatures import Content, content_of, first_line

LIGHTGBM = b"tree\nversion=v4\nnum_class=3\n"
XGBOOST_JSON = b' {"learner":{"attributes":{},"feature_names":[]'
XGBOOST_UBJSON = b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{L"


@pytest.mark.parametrize(
    ("head", "content"),
    [
        (LIGHTGBM, Content.LIGHTGBM_TEXT),
        (XGBOOST_JSON, Content.XGBOOST_JSON),
        (XGBOOST_UBJSON, Content.XGBOOST_UBJSON),
        (b"binf\x00\x00\x00?\x04\x00", Content.XGBOOST_BINARY),
        (b'{"name": "not a model"}', Content.UNKNOWN),
        (b"", Content.UNKNOWN),
    ],
)
def test_content_by_first_bytes(tmp_path: Path, head: bytes, content: Content) -> None:
    (tmp_path / "model.bst").write_bytes(head)
    assert content_of(tmp_path / "model.bst") is content


def test_first_line_drops_the_stack_trace_and_log_prefix() -> None:
    error = RuntimeError("[13:11:23] /src/c_api/c_api.cc:1530: Failed to load model.\nStack trace:\n  [bt] (0) x")
    assert first_line(error) == "Failed to load model."


@pytest.mark.parametrize(("head", "runtime"), [(LIGHTGBM, "lightgbm"), (XGBOOST_UBJSON, "xgboost")])
def test_model_bst_is_told_apart_by_content(tmp_path: Path, head: bytes, runtime: str) -> None:
    (tmp_path / "model.bst").write_bytes(head)
    found, artifact = runtimes.find_artifact(tmp_path)
    assert (found.name, artifact) == (runtime, tmp_path / "model.bst")


def test_model_bst_of_unknown_content_is_named(tmp_path: Path) -> None:
    (tmp_path / "model.bst").write_bytes(b"\x00garbage")
    with pytest.raises(ConfigurationError, match="model.bst: its name fits xgboost and lightgbm models"):
        runtimes.find_artifact(tmp_path)


def test_kserve_names_with_a_named_runtime(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_bytes(XGBOOST_JSON)
    assert runtimes.find_artifact(tmp_path, runtimes.by_format("xgboost"))[1] == tmp_path / "model.json"
    (tmp_path / "model.json").unlink()
    (tmp_path / "model.bst").write_bytes(LIGHTGBM)
    assert runtimes.find_artifact(tmp_path, runtimes.by_format("lightgbm"))[1] == tmp_path / "model.bst"


def test_a_named_runtime_refuses_another_kind_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "model.bst").write_bytes(LIGHTGBM)
    model = runtimes.by_format("xgboost").create("m", tmp_path / "model.bst")
    refusal = r"it is a LightGBM text model; serve it with --runtime lightgbm \(modelFormat lightgbm\)$"
    with pytest.raises(ModelLoadError, match=refusal):
        model.load()


def test_numbered_versions_give_the_newest(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    found, artifact = runtimes.find_artifact(tmp_path)
    assert (found.name, artifact) == ("tensorflow", tmp_path / "10")


def test_an_empty_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="the model directory is empty"):
        runtimes.find_artifact(tmp_path)
