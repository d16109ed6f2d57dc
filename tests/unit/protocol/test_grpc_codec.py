"""The gRPC codec, and the proto's wire compatibility with KServe's and Triton's published files."""

from __future__ import annotations

import base64
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from wharf.errors import InvalidInput, WharfError
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.v2 import InferResponse, Tensor
from tests.unit.protocol.test_tensors import NUMERIC

VALUES = {**NUMERIC, "BYTES": [b"", b"a", "\u00e9".encode(), b"\x00\xff"]}
TYPED = sorted(set(VALUES) - {"FP16"})


def _array(datatype: str) -> np.ndarray:
    values = VALUES[datatype]
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(2, 2)
    return np.array(values, dtype=codec.tensors.DTYPES[datatype]).reshape(2, 2)


def _typed_request(datatype: str, field: str, values: list, shape: tuple[int, ...] = (2, 2)) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    item = message.inputs.add(name="x", datatype=datatype, shape=shape)
    getattr(item.contents, field).extend(values)
    return message


def _raw_request(datatype: str, raw: bytes, shape: tuple[int, ...] = (2, 2)) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", raw_input_contents=[raw])
    message.inputs.add(name="x", datatype=datatype, shape=shape)
    return message


# ---- requests ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("datatype", TYPED)
def test_typed_contents_decode_every_datatype(datatype: str) -> None:
    field = codec._CONTENTS[datatype][0]
    request = codec.decode_request(_typed_request(datatype, field, VALUES[datatype]))
    (tensor,) = request.inputs
    assert tensor.name == "x" and tensor.datatype == datatype
    assert tensor.data.dtype == codec.tensors.DTYPES[datatype]
    assert tensor.data.shape == (2, 2)
    assert tensor.data.reshape(-1).tolist() == VALUES[datatype]


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_raw_contents_decode_every_datatype(datatype: str) -> None:
    expected = _array(datatype)
    request = codec.decode_request(_raw_request(datatype, codec.tensors.to_bytes(expected, datatype)))
    data = request.inputs[0].data
    assert data.shape == (2, 2) and data.dtype == expected.dtype
    assert data.tolist() == expected.tolist()


def test_request_fields_and_parameters() -> None:
    message = _typed_request("FP32", "fp32_contents", [1, 2, 3, 4])
    message.id = "req-1"
    message.parameters["flag"].bool_param = True
    message.parameters["count"].int64_param = -3
    message.parameters["name"].string_param = "s"
    message.parameters["scale"].double_param = 0.5
    message.parameters["big"].uint64_param = 2**64 - 1
    message.parameters["unset"].CopyFrom(pb.InferParameter())
    message.inputs[0].parameters["layout"].string_param = "NHWC"
    wanted = message.outputs.add(name="y")
    wanted.parameters["top"].int64_param = 2
    message.outputs.add(name="z")
    request = codec.decode_request(message)
    assert request.id == "req-1"
    assert request.parameters == {"flag": True, "count": -3, "name": "s", "scale": 0.5, "big": 2**64 - 1}
    assert request.inputs[0].parameters == {"layout": "NHWC"}
    assert [(o.name, o.parameters) for o in request.outputs] == [("y", {"top": 2}), ("z", None)]


def test_no_requested_outputs_and_no_id_decode_as_none() -> None:
    request = codec.decode_request(_typed_request("INT64", "int64_contents", [1, 2, 3, 4]))
    assert request.outputs is None and request.id is None and request.parameters == {}
    assert request.inputs[0].parameters is None


def test_empty_tensor() -> None:
    request = codec.decode_request(_typed_request("FP32", "fp32_contents", [], shape=(0, 3)))
    assert request.inputs[0].data.shape == (0, 3)


@pytest.mark.parametrize(
    "message, fragment",
    [
        (pb.ModelInferRequest(model_name="m"), "at least one tensor"),
        (_typed_request("FP32", "fp32_contents", [1, 2, 3]), "holds 4 elements but fp32_contents has 3"),
        (_typed_request("FP32", "fp64_contents", [1, 2, 3, 4]), "fp32_contents has 0"),
        (_typed_request("FP32", "fp32_contents", [1, 2], shape=(-1, 2)), "non-negative"),
        (_typed_request("FP16", "fp32_contents", [1, 2, 3, 4]), "send it in raw_input_contents"),
        (_typed_request("FP8", "fp32_contents", [1, 2, 3, 4]), "unknown datatype 'FP8'"),
        (_typed_request("INT8", "int_contents", [1, 2, 3, 128]), "out of range for INT8"),
        (_typed_request("UINT16", "uint_contents", [1, 2, 3, 65536]), "out of range for UINT16"),
        (_raw_request("FP32", b"\x00" * 15), "needs 16 bytes, got 15"),
        (_raw_request("BYTES", b"\x05\x00\x00\x00ab", (1,)), "runs past the end"),
        (_raw_request("BYTES", b"\x01\x00\x00\x00a"), "hold at most 1 \\(each has a 4-byte length prefix\\)"),
        (_raw_request("INT4", b"\x00" * 8), "unknown datatype 'INT4'"),
    ],
)
def test_invalid_requests_name_the_problem(message: pb.ModelInferRequest, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        codec.decode_request(message)


def test_raw_and_typed_contents_do_not_mix() -> None:
    message = _raw_request("FP32", b"\x00" * 16)
    second = message.inputs.add(name="y", datatype="FP32", shape=[1])
    second.contents.fp32_contents.append(1.0)
    message.raw_input_contents.append(b"\x00" * 4)
    with pytest.raises(InvalidInput, match="input 'y' has contents but the request uses raw_input_contents"):
        codec.decode_request(message)


def test_raw_contents_need_one_entry_per_input() -> None:
    message = _raw_request("FP32", b"\x00" * 16)
    message.inputs.add(name="y", datatype="FP32", shape=[1])
    with pytest.raises(InvalidInput, match="1 entries for 2 inputs"):
        codec.decode_request(message)


def test_input_names_must_be_present_and_unique() -> None:
    message = _typed_request("FP32", "fp32_contents", [1, 2, 3, 4])
    message.inputs.add(name="x", datatype="FP32", shape=[0])
    with pytest.raises(InvalidInput, match="unique"):
        codec.decode_request(message)
    message.inputs[1].name = ""
    with pytest.raises(InvalidInput, match="non-empty 'name'"):
        codec.decode_request(message)


# ---- responses --------------------------------------------------------------------------------------------------
def _response(*outputs: Tensor, **fields) -> InferResponse:  # type: ignore[no-untyped-def]
    return InferResponse(model_name="m", outputs=list(outputs), **fields)


@pytest.mark.parametrize("datatype", TYPED)
def test_typed_response_for_every_datatype(datatype: str) -> None:
    message = codec.encode_response(_response(Tensor("y", _array(datatype), datatype)), raw=False)
    assert not message.raw_output_contents
    (out,) = message.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("y", datatype, [2, 2])
    assert list(getattr(out.contents, codec._CONTENTS[datatype][0])) == VALUES[datatype]


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_raw_response_round_trips_every_datatype(datatype: str) -> None:
    message = codec.encode_response(_response(Tensor("y", _array(datatype), datatype)), raw=True)
    (out,) = message.outputs
    assert not out.HasField("contents")
    decoded = codec.tensors.from_bytes(message.raw_output_contents[0], list(out.shape), datatype, "y")
    assert decoded.tolist() == _array(datatype).tolist()


def test_fp16_output_makes_the_whole_response_raw() -> None:
    response = _response(Tensor("a", np.ones(2, np.float32)), Tensor("b", np.ones(2, np.float16)))
    message = codec.encode_response(response, raw=False)
    assert len(message.raw_output_contents) == 2
    assert not any(out.HasField("contents") for out in message.outputs)


def test_response_fields_parameters_and_string_outputs() -> None:
    response = _response(
        Tensor("s", np.array(["a", "\u00e9"]), parameters={"unit": "text"}),
        model_version="3",
        id="req-1",
        parameters={"flag": False, "n": np.int64(7), "x": 1.5, "huge": 2**64 - 1, "s": "v"},
    )
    message = codec.encode_response(response, raw=False)
    assert (message.model_name, message.model_version, message.id) == ("m", "3", "req-1")
    assert codec.decode_parameters(message.parameters) == {"flag": False, "n": 7, "x": 1.5, "huge": 2**64 - 1, "s": "v"}
    assert message.parameters["huge"].WhichOneof("parameter_choice") == "uint64_param"
    (out,) = message.outputs
    assert out.datatype == "BYTES" and list(out.contents.bytes_contents) == [b"a", "\u00e9".encode()]
    assert codec.decode_parameters(out.parameters) == {"unit": "text"}


def test_parameter_without_grpc_form_is_a_server_error() -> None:
    with pytest.raises(WharfError, match="parameter 'bad' \\(list\\)"):
        codec.encode_response(_response(parameters={"bad": [1]}), raw=False)


# ---- metadata and repository ------------------------------------------------------------------------------------
METADATA = {
    "name": "m",
    "versions": ["1"],
    "platform": "sklearn",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "BYTES", "shape": [-1]}],
}


def test_model_metadata_and_config() -> None:
    meta = codec.encode_model_metadata(METADATA)
    assert (meta.name, list(meta.versions), meta.platform) == ("m", ["1"], "sklearn")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP32", [-1, 4])]
    config = codec.encode_model_config(METADATA).config
    assert (config.name, config.platform, config.backend, config.max_batch_size) == ("m", "sklearn", "sklearn", 0)
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("x", pb.TYPE_FP32, [-1, 4])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [("y", pb.TYPE_STRING, [-1])]


def test_repository_index() -> None:
    rows = [
        {"name": "a", "state": "READY", "reason": ""},
        {"name": "b", "version": "2", "state": "UNAVAILABLE", "reason": "unloaded"},
    ]
    index = codec.encode_repository_index(rows)
    assert [(m.name, m.version, m.state, m.reason) for m in index.models] == [
        ("a", "", "READY", ""),
        ("b", "2", "UNAVAILABLE", "unloaded"),
    ]


def test_repository_requests_name_the_model_in_either_layout() -> None:
    assert codec.repository_model_name(pb.RepositoryModelLoadRequest(model_name="kserve")) == "kserve"
    triton = pb.RepositoryModelUnloadRequest(triton_model_name="triton")
    triton.parameters["unload_dependents"].bool_param = False
    assert codec.repository_model_name(triton) == "triton"
    with pytest.raises(InvalidInput, match="names no model"):
        codec.repository_model_name(pb.RepositoryModelLoadRequest())
    override = pb.RepositoryModelLoadRequest(triton_model_name="m")
    override.parameters["config"].string_param = "{}"
    with pytest.raises(InvalidInput, match=r"repository parameters \['config'\]"):
        codec.repository_model_name(override)


# ---- wire compatibility with the published proto files ----------------------------------------------------------
Fields = dict[str, dict[int, tuple[str, int, int, str]]]


def _published(module: str) -> descriptor_pb2.FileDescriptorProto:
    """The file descriptor of a published client's generated module, read in a separate interpreter.

    KServe's and Triton's modules both register `inference.*` in protobuf's default pool, so they cannot be
    imported into one process together.
    """
    script = f"import base64, {module} as m; print(base64.b64encode(m.DESCRIPTOR.serialized_pb).decode())"
    run = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"{module} is not importable (the test extra installs it): {run.stderr}"
    return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(run.stdout))


def _ours() -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)


def _fields(*files: descriptor_pb2.FileDescriptorProto) -> Fields:
    """Every message (nested ones too) by full name -> field number -> (name, type, label, type name)."""
    out: Fields = {}

    def visit(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}"
        out[name] = {f.number: (f.name, f.type, f.label, f.type_name) for f in message.field}
        for nested in message.nested_type:
            visit(name, nested)

    for file in files:
        for message in file.message_type:
            visit(f".{file.package}", message)
    return out


def _methods(file: descriptor_pb2.FileDescriptorProto) -> dict[str, tuple[str, str, bool, bool]]:
    (service,) = file.service
    assert f"{file.package}.{service.name}" == "inference.GRPCInferenceService"
    return {m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming) for m in service.method}


def test_proto_holds_kserve_proto_unchanged() -> None:
    kserve = _published("kserve.protocol.grpc.grpc_predict_v2_pb2")
    ours, theirs = _fields(_ours()), _fields(kserve)
    for message, fields in theirs.items():
        assert ours[message].items() >= fields.items(), message
    assert _methods(_ours()).items() >= _methods(kserve).items()


# Triton's messages that this proto declares with fewer fields, and the fields it names differently.
TRIMMED = {f".inference.{name}" for name in ("ModelConfig", "ModelInput", "ModelOutput", "ModelStatisticsResponse")}
RENAMED = {
    (f".inference.RepositoryModel{verb}Request", number): names
    for verb in ("Load", "Unload")
    for number, names in ((1, ("model_name", "repository_name")), (2, ("triton_model_name", "model_name")))
}


def test_proto_is_wire_compatible_with_triton_proto() -> None:
    triton_file = _published("tritonclient.grpc.service_pb2")
    config_file = _published("tritonclient.grpc.model_config_pb2")
    theirs, ours = _fields(triton_file, config_file), _fields(_ours())
    for message, our_fields in ours.items():
        their_fields = theirs[message]
        if message not in TRIMMED:
            assert their_fields.keys() <= our_fields.keys(), message
        for number in our_fields.keys() & their_fields.keys():
            (our_name, *our_type), (their_name, *their_type) = our_fields[number], their_fields[number]
            assert our_type == their_type, (message, number)
            assert RENAMED.get((message, number), (our_name, our_name)) == (our_name, their_name), (message, number)
    triton_methods = _methods(triton_file)
    for method, signature in _methods(_ours()).items():
        assert triton_methods[method] == signature, method
    their_enums = {e.name: e.value for e in config_file.enum_type}
    for enum in _ours().enum_type:
        assert [(v.name, v.number) for v in enum.value] == [(v.name, v.number) for v in their_enums[enum.name]]
