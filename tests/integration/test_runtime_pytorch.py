"""The PyTorch runtime behind a real `wharf serve`: TorchScript (scripted and traced) and torch.export programs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest
import torch

from tests.integration.conftest import served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, request, tensor

# the TorchScript artifacts are built with torch.jit.script and torch.jit.trace, which torch now deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

ROWS = np.array([[0.5, -1.25, 2.0, 0.1], [1.5, 0.25, -0.75, 3.0], [-2.0, 0.5, 0.3, -0.4]], dtype=np.float32)
OFFSET = np.array([0.1, -0.2, 0.3], dtype=np.float32)


class TwoInputs(torch.nn.Module):
    """Two inputs, a dict of two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.linear(x) + offset
        return {"logits": logits, "probs": torch.softmax(logits, dim=-1)}


class Models(NamedTuple):
    root: Path
    two: Any  # TwoInputs, served as `scripted` and `exported`
    mlp: Any  # served as `traced`


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A repository of three models: `scripted` (.pt), `exported` (.pt2), and `traced` (.pt, one input)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("torch-models")
    two, mlp = TwoInputs().eval(), torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    for name in ("scripted", "exported", "traced"):
        (root / name).mkdir()
    torch.jit.script(two).save(str(root / "scripted/model.pt"))
    batch = torch.export.Dim("batch")
    example = (torch.from_numpy(ROWS), torch.from_numpy(OFFSET))
    program = torch.export.export(two, example, dynamic_shapes={"x": {0: batch}, "offset": None})
    torch.export.save(program, str(root / "exported/model.pt2"))
    torch.jit.trace(mlp.eval(), torch.from_numpy(ROWS)).save(str(root / "traced/model.pt"))
    return Models(root, two, mlp)


@pytest.fixture(scope="module")
def client(models: Models) -> Iterator[httpx.Client]:
    with served_client(str(models.root)) as c:
        yield c


def _expected(models: Models) -> dict[str, np.ndarray]:
    with torch.no_grad():
        result = models.two(torch.from_numpy(ROWS), torch.from_numpy(OFFSET))
    return {name: value.numpy() for name, value in result.items()}


@pytest.mark.parametrize("model", ["scripted", "exported"])
def test_v2_infer_by_name_or_position_matches_torch(client: httpx.Client, models: Models, model: str) -> None:
    expected = _expected(models)
    by_name = infer(client, model, request(tensor("offset", OFFSET), tensor("x", ROWS)))
    by_position = infer(client, model, request(tensor("a", ROWS), tensor("b", OFFSET)))
    for outputs in (by_name, by_position):
        assert set(outputs) == {"logits", "probs"}
        assert all(np.allclose(outputs[name], expected[name], atol=1e-6) for name in expected)


def test_requested_output_and_fp64_input_are_cast(client: httpx.Client, models: Models) -> None:
    body = request(tensor("x", ROWS, "FP64"), tensor("offset", OFFSET), outputs=[{"name": "probs"}])
    doc = client.post("/v2/models/exported/infer", json=body).json()
    assert [(o["name"], o["datatype"], o["shape"]) for o in doc["outputs"]] == [("probs", "FP32", [3, 3])]
    assert np.allclose(np.reshape(doc["outputs"][0]["data"], (3, 3)), _expected(models)["probs"], atol=1e-6)


def test_v1_predict_matches_torch(client: httpx.Client, models: Models) -> None:
    with torch.no_grad():
        expected = models.mlp(torch.from_numpy(ROWS)).numpy()
    answer = client.post("/v1/models/traced:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    assert np.allclose(answer.json()["predictions"], expected, atol=1e-6)
    v2 = infer(client, "traced", request(tensor("input-0", ROWS)))
    assert list(v2) == ["output-0"] and np.allclose(v2["output-0"], expected, atol=1e-6)


def test_metadata(client: httpx.Client) -> None:
    exported = client.get("/v2/models/exported").json()
    assert exported["platform"] == "pytorch"
    assert exported["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "offset", "datatype": "FP32", "shape": [3]},
    ]
    assert exported["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "probs", "datatype": "FP32", "shape": [-1, 3]},
    ]
    scripted = client.get("/v2/models/scripted").json()  # TorchScript records no dtypes or shapes
    assert scripted["platform"] == "pytorch" and scripted["inputs"] == [] and scripted["outputs"] == []


NARROW = [tensor("x", ROWS[:, :3]), tensor("offset", OFFSET)]
TEXT = tensor("input", np.array(["x"]))
BAD = [
    ("exported", NARROW, "input 'x' of model 'exported' must have shape [-1, 4], got [3, 3]"),
    ("scripted", NARROW, "model 'scripted' rejected the input: mat1 and mat2 shapes cannot be multiplied"),
    ("scripted", [tensor("x", ROWS)], "missing input(s) ['offset'] for model 'scripted'"),
    ("traced", [tensor("a", ROWS), tensor("b", ROWS)], "model 'traced' takes 1 input(s) ['input'], got 2"),
    ("traced", [TEXT], "input 'input' of model 'traced' must be numeric, got BYTES"),
]


@pytest.mark.parametrize(("model", "inputs", "message"), BAD)
def test_bad_input_is_a_400_and_the_model_keeps_serving(
    client: httpx.Client, model: str, inputs: list[dict[str, Any]], message: str
) -> None:
    assert_bad_input(client, model, request(*inputs), message)
    good = [tensor("x", ROWS), tensor("offset", OFFSET)] if model != "traced" else [tensor("input", ROWS)]
    assert_serves(client, model, request(*good))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_is_used_where_torch_has_it(models: Models) -> None:
    from wharf.model.runtimes.pytorch import PyTorchModel
    from wharf.protocol.v2 import InferRequest, Tensor

    for artifact in ("scripted/model.pt", "exported/model.pt2"):
        model = PyTorchModel("m", models.root / artifact)
        model.load()
        assert model.device.type == "cuda"
        outputs = model.predict(InferRequest([Tensor("x", ROWS), Tensor("offset", OFFSET)]))
        assert np.allclose(outputs["probs"], _expected(models)["probs"], atol=1e-5)
