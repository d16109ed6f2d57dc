"""Third-party REST clients against a real `wharf serve`: NVIDIA's tritonclient.http (binary data on and off)
and KServe's InferenceRESTClient (V1 and V2)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.integration.conftest import RunningServer
from tests.unit.protocol.test_grpc_codec import VALUES
from wharf.protocol.tensors import DTYPES


@pytest.fixture(scope="module")
def echo(echo_server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{echo_server.http_port}", network_timeout=10)
    yield client
    client.close()


def _array(datatype: str) -> np.ndarray:
    return np.array(VALUES[datatype], dtype=DTYPES[datatype]).reshape(2, 2)


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_every_datatype_round_trips(
    echo: triton.InferenceServerClient, datatype: str, binary_in: bool, binary_out: bool
) -> None:
    array = _array(datatype)
    if datatype == "BYTES" and not (binary_in and binary_out):
        array = np.array([b"a", b"", "\u00e9".encode(), b"z"], dtype=object).reshape(2, 2)  # JSON carries text only
    tensor = triton.InferInput("t", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary_in)
    answer = echo.infer("echo", [tensor], outputs=[triton.InferRequestedOutput("t", binary_data=binary_out)])
    got = answer.as_numpy("t")
    assert got.shape == array.shape
    assert answer.get_output("t")["datatype"] == datatype
    if datatype == "BYTES":
        assert [v if isinstance(v, bytes) else v.encode() for v in got.reshape(-1)] == list(array.reshape(-1))
    else:
        assert np.array_equal(got, array)


def test_health_metadata_and_errors(echo: triton.InferenceServerClient) -> None:
    assert echo.is_server_live() and echo.is_server_ready() and echo.is_model_ready("echo")
    assert echo.get_server_metadata()["name"] == "wharf"
    assert echo.get_model_metadata("echo")["name"] == "echo"
    assert [m["name"] for m in echo.get_model_repository_index()] == ["echo"]
    tensor = triton.InferInput("t", [1], "FP32")
    tensor.set_data_from_numpy(np.zeros(1, dtype=np.float32))
    with pytest.raises(InferenceServerException, match="not in the repository"):
        echo.infer("missing", [tensor])
    assert echo.infer("echo", [tensor]).as_numpy("t").tolist() == [0.0]


KSERVE_CLIENT = """
import asyncio, json, sys
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

async def main(base_url):
    seen = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=10)) as client:
        seen["ready"] = await client.is_server_ready(base_url)
        seen["model_ready"] = await client.is_model_ready(base_url, "iris")
        tensor = InferInput("input-0", [2, 4], "FP32")
        tensor.set_data_from_numpy(__import__("numpy").array(json.loads(sys.argv[2]), dtype="float32"))
        answer = await client.infer(base_url, InferRequest("iris", [tensor], request_id="r1"), model_name="iris")
        seen["v2"] = {"id": answer.id, "predict": answer.outputs[0].as_numpy().tolist()}
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=10)) as client:
        answer = await client.infer(base_url, {"instances": json.loads(sys.argv[2])}, model_name="iris")
        seen["v1"] = answer["predictions"]
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1]))
"""


def test_kserve_rest_client(iris_server: RunningServer, iris_model) -> None:  # type: ignore[no-untyped-def]
    import joblib

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    expected = joblib.load(iris_model).predict(np.array(rows, dtype=np.float32)).tolist()
    # KServe's client runs in a process of its own: its protobuf messages clash with tritonclient's in one process.
    run = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, iris_server.url, json.dumps(rows)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["ready"] and seen["model_ready"]
    assert seen["v2"] == {"id": "r1", "predict": expected}
    assert seen["v1"] == expected
