"""The TensorFlow runtime behind a real `wharf serve`: a SavedModel with two signatures and a `.keras` model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest

from tests.integration.conftest import served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, request, tensor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
# imported plainly, not importorskip'd: the `test` extra installs them, so a missing one must fail
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

# saving a Keras model converts its variables with np.array(), which numpy 2 flags
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

ROWS = np.array([[0.5, -1.25, 2.0, 0.1], [1.5, 0.25, -0.75, 3.0], [-2.0, 0.5, 0.3, -0.4]], dtype=np.float32)


class Affine(tf.Module):
    """`serving_default` takes x [N, 4]; `scaled` takes x of any width (checked by TensorFlow itself) and k."""

    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]))
        self.b = tf.Variable([0.1, -0.2, 0.3])

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: Any) -> dict[str, Any]:
        return {"y": tf.matmul(x, self.w) + self.b, "total": tf.reduce_sum(x, axis=1)}

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.float32, name="x"), tf.TensorSpec([], tf.float32, name="k")]
    )
    def scaled(self, x: Any, k: Any) -> dict[str, Any]:
        return {"y": (tf.matmul(x, self.w) + self.b) * k}


class Models(NamedTuple):
    root: Path
    affine: Any
    keras: Any


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A repository of `saved` (a SavedModel directory) and `functional` (a .keras file with a dict of outputs)."""
    root = tmp_path_factory.mktemp("tf-models")
    affine = Affine()
    signatures = {"serving_default": affine.serve, "scaled": affine.scaled}
    tf.saved_model.save(affine, str(root / "saved"), signatures=signatures)
    keras.utils.set_random_seed(0)
    features = keras.Input((4,), name="features")
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Dense(8, activation="relu")(features))
    model = keras.Model(features, {"logits": logits, "probs": keras.layers.Softmax(name="probs")(logits)})
    (root / "functional").mkdir()
    model.save(root / "functional/model.keras")
    return Models(root, affine, model)


@pytest.fixture(scope="module")
def client(models: Models) -> Iterator[httpx.Client]:
    threads = {"WHARF_TF_INTRA_OP_THREADS": "2", "WHARF_TF_INTER_OP_THREADS": "2"}
    with served_client(str(models.root), env=threads) as c:
        yield c


def test_saved_model_default_and_named_signature(client: httpx.Client, models: Models) -> None:
    expected = {k: v.numpy() for k, v in models.affine.serve(tf.constant(ROWS)).items()}
    outputs = infer(client, "saved", request(tensor("x", ROWS)))
    assert set(outputs) == {"y", "total"}
    assert all(np.allclose(outputs[name], expected[name], atol=1e-6) for name in expected)
    scaled = models.affine.scaled(tf.constant(ROWS), tf.constant(2.0))["y"].numpy()
    body = request(tensor("x", ROWS), tensor("k", np.array(2.0, np.float32)), parameters={"signature_name": "scaled"})
    assert np.allclose(infer(client, "saved", body)["y"], scaled, atol=1e-6)


def test_v1_and_requested_outputs(client: httpx.Client, models: Models) -> None:
    expected = models.keras.predict_on_batch(ROWS)
    answer = client.post("/v1/models/functional:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert [sorted(row) for row in rows] == [["logits", "probs"]] * 3
    assert np.allclose([row["probs"] for row in rows], expected["probs"], atol=1e-6)
    outputs = infer(client, "functional", request(tensor("features", ROWS, "FP64"), outputs=[{"name": "logits"}]))
    assert list(outputs) == ["logits"] and np.allclose(outputs["logits"], expected["logits"], atol=1e-6)
    saved = client.post("/v1/models/saved:predict", json={"instances": ROWS.tolist()}).json()["predictions"]
    assert np.allclose([row["total"] for row in saved], ROWS.sum(axis=1), atol=1e-6)


def test_metadata(client: httpx.Client) -> None:
    saved = client.get("/v2/models/saved").json()
    assert saved["platform"] == "tensorflow"
    assert saved["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert sorted(saved["outputs"], key=lambda o: o["name"]) == [
        {"name": "total", "datatype": "FP32", "shape": [-1]},
        {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
    ]
    functional = client.get("/v2/models/functional").json()
    assert functional["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert functional["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "probs", "datatype": "FP32", "shape": [-1, 3]},
    ]


TEXT = tensor("x", np.array([list("abcd")]))
SCALED_NARROW = [tensor("x", ROWS[:, :3]), tensor("k", np.array(2.0, np.float32))]
BAD = [
    ("saved", request(tensor("x", ROWS[:, :3])), "model 'saved' must have shape [-1, 4], got [3, 3]"),
    ("saved", request(TEXT), "input 'x' of model 'saved' must be FP32, got BYTES"),
    (
        "saved",
        request(tensor("x", ROWS), parameters={"signature_name": "nope"}),
        "model 'saved' has no signature 'nope'; it has ['scaled', 'serving_default']",
    ),
    (  # this signature takes any width: TensorFlow itself rejects it
        "saved",
        request(*SCALED_NARROW, parameters={"signature_name": "scaled"}),
        "model 'saved' rejected the input: Matrix size-incompatible",
    ),
    ("functional", request(tensor("features", ROWS[:, :2])), "must have shape [-1, 4], got [3, 2]"),
    ("functional", request(tensor("a", ROWS), tensor("b", ROWS)), "takes 1 input(s) ['features'], got 2"),
]


@pytest.mark.parametrize(("model", "body", "message"), BAD)
def test_bad_input_is_a_400_and_the_model_keeps_serving(
    client: httpx.Client, model: str, body: dict[str, Any], message: str
) -> None:
    assert_bad_input(client, model, body, message)
    assert_serves(client, model, request(tensor("x" if model == "saved" else "features", ROWS)))


def test_a_directory_of_numbered_versions_is_one_model(models: Models, tmp_path: Path) -> None:
    """TensorFlow Serving's (and KServe's) layout `tfk/1/saved_model.pb`: model `tfk`, version 1."""
    shutil.copytree(models.root / "saved", tmp_path / "tfk/1")
    threads = {"WHARF_TF_INTRA_OP_THREADS": "1", "WHARF_TF_INTER_OP_THREADS": "1"}
    with served_client(str(tmp_path / "tfk"), env=threads) as client:
        triton = ("name", "state", "reason", "version")  # Triton's index keys (Wharf adds memory figures)
        assert [{k: row[k] for k in triton} for row in client.post("/v2/repository/index").json()] == [
            {"name": "tfk", "state": "READY", "reason": "", "version": "1"}
        ]
        assert client.get("/v2/models/tfk").json()["versions"] == ["1"]
        expected = models.affine.serve(tf.constant(ROWS))["total"].numpy()
        assert np.allclose(infer(client, "tfk", request(tensor("x", ROWS)))["total"], expected, atol=1e-6)
        answer = client.post("/v2/models/tfk/versions/1/infer", json=request(tensor("x", ROWS)))
        assert answer.status_code == 200, answer.text
