"""The ONNX runtime: graphs exported from scikit-learn (skl2onnx) and torch, and one built with onnx.helper,
served by one `wharf serve` and compared with onnxruntime's and torch's own results."""

from __future__ import annotations

import runpy
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from sklearn.datasets import load_iris

from tests.integration.conftest import ROOT, served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, request, tensor
from wharf.model.runtimes.onnx import ONNXModel, ONNXSettings

IRIS = load_iris().data[[0, 60, 120]]
X, Z = np.random.default_rng(0).normal(size=(2, 4)), np.random.default_rng(1).normal(size=(2, 2))


class TwoHeads(torch.nn.Module):
    """Two inputs (x: [batch, 4], z: [batch, 2]) and two outputs (logits and their softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.x, self.z = torch.nn.Linear(4, 3), torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.x(x) + self.z(z)
        return logits, torch.softmax(logits, dim=1)


def _helper_graph() -> onnx.ModelProto:
    """count (INT32 [n]) -> doubled = count + count; word (STRING [n]) -> same, unchanged."""
    int32, text = TensorProto.INT32, TensorProto.STRING
    graph = helper.make_graph(
        [helper.make_node("Add", ["count", "count"], ["doubled"]), helper.make_node("Identity", ["word"], ["same"])],
        "helper",
        [helper.make_tensor_value_info(name, t, ["n"]) for name, t in (("count", int32), ("word", text))],
        [helper.make_tensor_value_info(name, t, ["n"]) for name, t in (("doubled", int32), ("same", text))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def net() -> TwoHeads:
    torch.manual_seed(0)
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, net: TwoHeads) -> Path:
    """sklearn/model.onnx (the example), torch/model.onnx, helper/model.onnx."""
    root = tmp_path_factory.mktemp("onnx")
    for name in ("sklearn", "torch", "helper"):
        (root / name).mkdir()
    runpy.run_path(str(ROOT / "examples/onnx/train.py"))["main"](str(root / "sklearn/model.onnx"))
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated but offline
        torch.onnx.export(
            net,
            (torch.zeros(1, 4), torch.zeros(1, 2)),
            str(root / "torch/model.onnx"),
            input_names=["x", "z"],
            output_names=["logits", "probs"],
            dynamic_axes={"x": batch, "z": batch, "logits": batch, "probs": batch},
            dynamo=False,  # the torch.export-based exporter needs onnxscript, which is not installed
        )
    onnx.save(_helper_graph(), root / "helper/model.onnx")
    return root


@pytest.fixture(scope="module")
def client(repository: Path) -> Iterator[httpx.Client]:
    with served_client(str(repository), timeout=10) as c:
        yield c


def test_metadata_comes_from_the_graph(client: httpx.Client) -> None:
    sklearn = client.get("/v2/models/sklearn").json()
    assert sklearn["platform"] == "onnx"
    assert sklearn["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert sklearn["outputs"] == [
        {"name": "output_label", "datatype": "INT64", "shape": [-1]},
        {"name": "output_probability", "datatype": "FP32", "shape": [-1, -1]},
    ]
    net = client.get("/v2/models/torch").json()
    assert net["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "z", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in net["outputs"]] == [
        ("logits", "FP32", [-1, 3]),
        ("probs", "FP32", [-1, 3]),
    ]
    assert [i["datatype"] for i in client.get("/v2/models/helper").json()["inputs"]] == ["INT32", "BYTES"]


def test_sklearn_graph_matches_onnxruntime(client: httpx.Client, repository: Path) -> None:
    session = onnxruntime.InferenceSession(repository / "sklearn/model.onnx", providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": IRIS.astype(np.float32)})
    probabilities = np.array([list(row.values()) for row in probabilities])
    body = request(tensor("X", IRIS))  # FP64 data for an FP32 input
    outputs = infer(client, "sklearn", body)
    assert outputs["output_label"].tolist() == labels.tolist()
    assert np.allclose(outputs["output_probability"], probabilities)
    only = infer(client, "sklearn", {**body, "outputs": [{"name": "output_probability"}]})
    assert list(only) == ["output_probability"] and only["output_probability"].shape == (3, 3)
    v1 = client.post("/v1/models/sklearn:predict", json={"instances": IRIS.tolist()}).json()["predictions"]
    assert [row["output_label"] for row in v1] == labels.tolist()
    assert np.allclose([row["output_probability"] for row in v1], probabilities)


def test_torch_graph_with_two_inputs_and_outputs_matches_torch(client: httpx.Client, net: TwoHeads) -> None:
    with torch.no_grad():
        logits, probs = (t.numpy() for t in net(torch.from_numpy(X).float(), torch.from_numpy(Z).float()))
    outputs = infer(client, "torch", request(tensor("z", Z.astype(np.float32), "FP32"), tensor("x", X)))
    assert np.allclose(outputs["logits"], logits, atol=1e-5) and np.allclose(outputs["probs"], probs, atol=1e-5)
    v1 = client.post("/v1/models/torch:predict", json={"instances": X.tolist()})
    assert v1.status_code == 400 and "missing input(s) ['z']" in v1.json()["error"]


def test_integers_and_strings_are_cast_to_the_graph_types(client: httpx.Client) -> None:
    count = tensor("count", np.array([1, 20, -3]), "INT64")
    word = tensor("word", np.array(["a", "bé", ""]))
    answer = client.post("/v2/models/helper/infer", json=request(count, word))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [
        {"name": "doubled", "datatype": "INT32", "shape": [3], "data": [2, 40, -6]},
        {"name": "same", "datatype": "BYTES", "shape": [3], "data": ["a", "bé", ""]},
    ]


WORDS = tensor("word", np.array(["a"]))
BAD = [
    ("sklearn", [tensor("X", IRIS[:1, :3])], "input 'X' of model 'sklearn' takes shape [-1, 4], got [1, 3]"),
    ("sklearn", [tensor("X", IRIS[0])], "takes shape [-1, 4], got [4]"),
    ("sklearn", [tensor("X", np.array([list("abcd")]))], "takes FP32, got BYTES"),
    ("sklearn", [tensor("input-0", IRIS)], "unexpected input(s) ['input-0']"),
    ("torch", [tensor("x", X)], "missing input(s) ['z']"),
    ("torch", [tensor("x", X), tensor("z", np.zeros((3, 2)))], "input 'z' of model 'torch': dimension 'batch' is 3"),
    ("helper", [tensor("count", np.array([2**40]), "INT64"), WORDS], "input 'count' of model 'helper': a value is out"),
    ("helper", [tensor("count", np.array([1.5])), WORDS], "input 'count' of model 'helper' takes INT32, got FP64"),
]


@pytest.mark.parametrize(("model", "inputs", "message"), BAD)
def test_bad_input_is_a_400_naming_the_input(
    client: httpx.Client, model: str, inputs: list[dict], message: str
) -> None:
    assert_bad_input(client, model, request(*inputs), message)
    assert_serves(client, "sklearn", request(tensor("X", IRIS)))


def test_unknown_output_is_a_400(client: httpx.Client) -> None:
    assert_bad_input(
        client, "sklearn", request(tensor("X", IRIS), outputs=[{"name": "nope"}]), "has no output(s) ['nope']"
    )


def test_thread_counts_come_from_the_environment(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_ONNX_INTRA_OP_THREADS", "2")
    model = ONNXModel("m", repository / "sklearn/model.onnx", settings=ONNXSettings())
    model.load()
    assert model.session.get_session_options().intra_op_num_threads == 2


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in onnxruntime.get_available_providers(), reason="needs CUDA")
def test_cuda_is_chosen_where_onnxruntime_has_it(repository: Path) -> None:
    model = ONNXModel("m", repository / "torch/model.onnx")
    model.load()
    assert model.session.get_providers()[0] == "CUDAExecutionProvider"
