"""What the framework runtime tests (test_runtime_*.py) share: V2 request builders, inference through a served
model, and the check that a runtime answers bad input with a 400 whose JSON error names the problem.

The frameworks themselves are imported plainly by each test module, never with `pytest.importorskip`: the `test`
extra (what `make test` and CI install) installs them all, so a missing or broken one must fail, not skip."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from tests.integration.conftest import outputs_of

DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}


def tensor(name: str, data: Any, datatype: str | None = None) -> dict[str, Any]:
    """The V2 JSON of input `name` holding `data` (an array, or what np.asarray takes), of its shape and flattened.
    Its datatype is `datatype` where given (to send data as another type), else the one of the array's dtype:
    FP32, FP64, INT32, INT64, or BYTES for strings."""
    array = np.asarray(data)
    if datatype is None:
        datatype = "BYTES" if array.dtype.kind == "U" else DATATYPES[array.dtype]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.reshape(-1).tolist()}


def request(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A V2 infer request body of `inputs` (see `tensor`) and `extra` fields, such as `outputs` or `parameters`."""
    return {"inputs": list(inputs), **extra}


def rows_request(rows: np.ndarray, **extra: Any) -> dict[str, Any]:
    """A V2 request of `rows` as FP64 'input-0', the one input of a tabular (XGBoost, LightGBM, sklearn) model."""
    return request(tensor("input-0", rows, "FP64"), **extra)


def infer(client: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    """POST `body` to `model`'s V2 infer endpoint; it must answer 200, and this returns its outputs by name."""
    return outputs_of(client.post(f"/v2/models/{model}/infer", json=body))


def assert_bad_input(client: httpx.Client, model: str, body: dict[str, Any], message: str) -> None:
    """`model` answers the V2 infer request `body` with a 400 whose JSON error contains `message`."""
    answer = client.post(f"/v2/models/{model}/infer", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def assert_serves(client: httpx.Client, model: str, body: dict[str, Any]) -> None:
    """`model` answers the V2 infer request `body` with a 200 (after a bad request: it keeps serving)."""
    answer = client.post(f"/v2/models/{model}/infer", json=body)
    assert answer.status_code == 200, answer.text
