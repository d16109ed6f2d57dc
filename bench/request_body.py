"""Write the request every benchmark request repeats: `python bench/request_body.py json|grpc EXPECTED ROWS MODEL OUT`.

The request carries the first ROWS rows of EXPECTED (bench/train_model.py's expected.json) as one FP32 input
tensor "input-0" of shape [ROWS, features].
- json: the Open Inference Protocol (V2) JSON body, for wrk (bench/post_body.lua).
- grpc: a gRPC message frame for h2load: a 0 byte (not compressed), the message length as 4 bytes big-endian, then
  the serialized `inference.ModelInferRequest` (typed fp32_contents; id "bench", so that every server's answer
  has the same size). Needs Wharf's venv for the generated protobuf module.
"""

import json
import struct
import sys
from pathlib import Path


def rows_of(expected: Path, count: int) -> list[list[float]]:
    rows = json.loads(expected.read_text())["rows"]
    return [rows[i % len(rows)] for i in range(count)]


def infer_request(model: str, rows: list[list[float]]):
    from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32", shape=[len(rows), len(rows[0])])
    tensor.contents.fp32_contents.extend(v for row in rows for v in row)
    return pb.ModelInferRequest(model_name=model, id="bench", inputs=[tensor])


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def main(kind: str, expected: Path, count: int, model: str, out: Path) -> None:
    rows = rows_of(expected, count)
    if kind == "json":
        body = {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": rows}]}
        out.write_text(json.dumps(body, separators=(",", ":")))
    elif kind == "grpc":
        out.write_bytes(frame(infer_request(model, rows).SerializeToString()))
    else:
        sys.exit(f"request_body.py: unknown kind '{kind}' (known: json, grpc)")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
