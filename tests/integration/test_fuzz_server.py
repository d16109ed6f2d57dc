"""Fuzzing a real `wharf serve` (the iris model) with hypothesis: random and malformed bodies, shapes, datatypes and
headers over REST V2 (JSON and binary), V1 and gRPC ModelInfer. Whatever comes, the server answers without a 5xx
(gRPC: no INTERNAL or UNKNOWN) and still answers afterwards. Seeded, so a run is reproducible; ~15 s in all."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import RunningServer
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from wharf.protocol.tensors import DTYPES

TIMEOUT_S = 30
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible, CI is not flaky
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}

# ---- strategies -------------------------------------------------------------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children),
    max_leaves=25,
)
dimensions = st.integers(-2, 6) | st.sampled_from([0, 2**31, 2**40, 2**62, 2**63 - 1, 2**64])
shapes = st.lists(dimensions, max_size=4) | st.lists(st.integers(0, 1), min_size=60, max_size=70)
datatypes = st.sampled_from([*DTYPES, "FP8", "", "fp32", "BF16"])
names = st.sampled_from(["input-0", "x"]) | st.text(max_size=4)


def _nested(values: list[Any], shape: list[int]) -> Any:
    """`values` (flat) as nested lists of `shape`."""
    for size in reversed(shape[1:]):
        values = [values[i : i + size] for i in range(0, len(values), size)] if size else []
    return values


@st.composite
def tensor_data(draw: st.DrawFn, shape: list[int], datatype: str) -> Any:
    """Data that fits the shape (of the datatype's kind, flat or nested) or any JSON at all."""
    count = math.prod(shape) if all(isinstance(d, int) and 0 <= d < 2**20 for d in shape) else None
    if count is None or count > 64 or draw(st.booleans()):
        return draw(json_values)
    element = {"BOOL": st.booleans(), "BYTES": st.text(max_size=5)}.get(
        datatype, st.integers(-300, 300) | st.floats(allow_nan=False, allow_infinity=False)
    )
    values = draw(st.lists(element, min_size=count, max_size=count))
    return _nested(values, shape) if draw(st.booleans()) else values


@st.composite
def v2_tensors(draw: st.DrawFn) -> dict[str, Any]:
    shape, datatype = draw(shapes), draw(datatypes)
    tensor: dict[str, Any] = {"name": draw(names), "shape": shape, "datatype": datatype}
    if draw(st.booleans()):
        tensor["data"] = draw(tensor_data(shape, datatype))
    if draw(st.integers(0, 4)) == 0:
        tensor["parameters"] = draw(json_values)
    if draw(st.integers(0, 8)) == 0:
        tensor[draw(st.text(max_size=5))] = draw(json_values)
    return tensor


@st.composite
def v2_documents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    doc: dict[str, Any] = {"inputs": draw(st.lists(v2_tensors(), max_size=3))}
    for key in ("id", "parameters", "outputs", "model_name"):
        if draw(st.integers(0, 4)) == 0:
            doc[key] = draw(json_values)
    return doc


headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["application/json", "text/plain", "application/octet-stream", "x/y"]),
        "x-request-id": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
        "traceparent": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
        "inference-header-content-length": st.sampled_from(["-1", "0", "1", "x", "99999999999999999999", ""]),
    },
)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # the standard library writes integers of any size, as a client may


# ---- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(iris_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=iris_server.url, timeout=TIMEOUT_S) as opened:
        yield opened
    assert iris_server.proc.poll() is None, "the server died"
    assert httpx.get(f"{iris_server.url}/v2/health/ready", timeout=TIMEOUT_S).status_code == 200


@pytest.fixture(scope="module")
def channel(iris_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{iris_server.grpc_port}") as opened:
        yield opened
    assert iris_server.proc.poll() is None, "the server died"


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


def _answered(answer: httpx.Response) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json()["error"], str)


# ---- REST -------------------------------------------------------------------------------------------------------
@FUZZ
@given(doc=v2_documents(), sent_headers=headers)
def test_v2_json_bodies(client: httpx.Client, doc: Any, sent_headers: dict[str, str]) -> None:
    sent_headers.pop("inference-header-content-length", None)
    _answered(client.post("/v2/models/iris/infer", content=_dumps(doc), headers=sent_headers))


@FUZZ
@given(
    tensors=st.lists(v2_tensors(), min_size=1, max_size=2),
    sizes=st.lists(st.integers(-1, 40) | st.sampled_from([2**31, 2**63]), min_size=2, max_size=2),
    binary=st.binary(max_size=80),
    offset=st.integers(-3, 3) | st.sampled_from([None, 10**9]),
)
def test_v2_binary_bodies(
    client: httpx.Client, tensors: list[dict[str, Any]], sizes: list[int], binary: bytes, offset: int | None
) -> None:
    for tensor, size in zip(tensors, sizes, strict=False):
        tensor.pop("data", None)
        tensor["parameters"] = {"binary_data_size": size}
    header = _dumps({"inputs": tensors})
    length = "x" if offset is None else str(len(header) + offset)
    answer = client.post(
        "/v2/models/iris/infer", content=header + binary, headers={"inference-header-content-length": length}
    )
    _answered(answer)


@FUZZ
@given(
    key=st.sampled_from(["instances", "inputs", "predictions", "other"]),
    value=json_values,
    b64=st.lists(st.text(st.sampled_from("aGVsbG8=!"), max_size=8), max_size=4),
    path=st.sampled_from(["/v1/models/iris:predict", "/v1/models/iris:explain", "/v1/models/iris:other"]),
)
def test_v1_bodies(client: httpx.Client, key: str, value: Any, b64: list[str], path: str) -> None:
    if b64:
        value = [value, [{"b64": text} for text in b64]]
    _answered(client.post(path, content=_dumps({key: value})))


@FUZZ
@given(body=st.binary(max_size=200), path=st.sampled_from(["/v2/models/iris/infer", "/v1/models/iris:predict"]))
def test_bytes_that_are_not_json(client: httpx.Client, body: bytes, path: str) -> None:
    _answered(client.post(path, content=body))


# ---- gRPC -------------------------------------------------------------------------------------------------------
_CONTENTS = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=6),
}
grpc_shapes = st.lists(st.integers(-2, 6) | st.sampled_from([0, 2**40, 2**62, 2**63 - 1]), max_size=4) | st.lists(
    st.integers(0, 1), min_size=60, max_size=70
)


@st.composite
def infer_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=draw(st.sampled_from(["iris", "nope", ""])))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        item = request.inputs.add(name=draw(names), datatype=draw(datatypes), shape=draw(grpc_shapes))
        if raw:
            request.raw_input_contents.append(draw(st.binary(max_size=64)))
        else:
            field = draw(st.sampled_from(sorted(_CONTENTS)))
            getattr(item.contents, field).extend(draw(st.lists(_CONTENTS[field], max_size=12)))
    if raw and draw(st.booleans()):
        request.raw_input_contents.append(b"\x00" * 8)  # one more than there are inputs
    for _ in range(draw(st.integers(0, 2))):
        request.outputs.add(name=draw(names))
    return request


@FUZZ
@given(request=infer_requests())
def test_grpc_model_infer(stub: pb_grpc.GRPCInferenceServiceStub, request: pb.ModelInferRequest) -> None:
    try:
        stub.ModelInfer(request, timeout=TIMEOUT_S)
    except grpc.RpcError as error:
        assert error.code() not in SERVER_FAULTS, error.details()


@FUZZ
@given(raw=st.binary(max_size=120))
def test_grpc_bytes_that_are_not_protobuf(channel: grpc.Channel, raw: bytes) -> None:
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
    try:
        infer(raw, timeout=TIMEOUT_S)
    except grpc.RpcError as error:
        assert error.code() not in SERVER_FAULTS, error.details()
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT_S).ready
