"""KServe's Hugging Face arguments (task, max_model_len, dtype) from model-settings.json and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.errors import ConfigurationError
from wharf.model.base import Model
from wharf.model.runtimes import huggingface
from wharf.model.settings import ModelSettings


def test_model_settings_reach_the_hugging_face_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_HF_MAX_BATCH_SEQUENCES", "4")
    model = huggingface.create("smol", tmp_path)
    ModelSettings(task="text_generation", max_model_len=512, dtype="bfloat16").apply(model)
    assert (model.task_name, model.settings.max_model_len, model.settings.dtype) == ("text_generation", 512, "bfloat16")
    assert model.settings.max_batch_sequences == 4  # what the environment said stays


def test_a_gguf_file_is_served_from_its_directory(tmp_path: Path) -> None:
    artifact = tmp_path / "model.gguf"
    artifact.write_bytes(b"GGUF")
    model = huggingface.create("smol", artifact)
    assert (model.directory, model.gguf_file) == (tmp_path, "model.gguf")


def test_bad_or_misplaced_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="dtype"):
        ModelSettings(dtype="int3").apply(huggingface.create("smol", tmp_path))
    with pytest.raises(ConfigurationError, match="max_model_len: only Hugging Face models"):
        ModelSettings(max_model_len=64).apply(Model("plain"))
    monkeypatch.setenv("WHARF_HF_MAX_MODEL_LEN", "one")
    with pytest.raises(ConfigurationError, match="WHARF_HF_MAX_MODEL_LEN"):
        huggingface.create("smol", tmp_path)
