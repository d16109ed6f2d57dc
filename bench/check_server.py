"""Check that a server answers every request with the model's own predictions, under concurrency.

    python bench/check_server.py rest URL EXPECTED ROWS
    python bench/check_server.py grpc HOST:PORT MODEL EXPECTED ROWS [FRAME]

Sends 3 rounds of 64 concurrent requests, each with a different slice of ROWS rows of EXPECTED
(bench/train_model.py's expected.json), and compares each answer's first output with the expected labels for its
own rows: so a server that merges requests into batches must also split the answers back correctly. Any error
status or wrong label stops with exit status 1.
With FRAME (bench/request_body.py's gRPC frame), it first sends that exact message and checks its answer, then
prints the size of the answer's gRPC frame: bench/grpc_iris.sh divides h2load's received data by it to count the
calls that really returned a ModelInferResponse (h2load counts HTTP 200 as success whatever the grpc-status).
Runs in Wharf's venv (numpy, grpcio and the generated protobuf module).
"""

import json
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CONCURRENCY = 64
ROUNDS = 3


def slices(expected: dict, rows: int):
    """(rows, labels) of each request: consecutive slices, wrapping around the data."""
    data, labels = np.array(expected["rows"], dtype=np.float32), np.array(expected["labels"])
    for i in range(CONCURRENCY * ROUNDS):
        index = np.arange(i * rows, (i + 1) * rows) % len(data)
        yield data[index], labels[index]


def check(name: str, got, want) -> None:
    got = np.asarray(got).reshape(-1)
    if got.shape != want.shape or not np.array_equal(got.astype(want.dtype), want):
        sys.exit(f"check_server.py: {name} answered {got.tolist()}, the model predicts {want.tolist()}")


def rest(url: str, expected: dict, rows: int) -> None:
    barrier = threading.Barrier(CONCURRENCY)

    def call(rows_labels) -> None:
        data, want = rows_labels
        body = {"inputs": [{"name": "input-0", "shape": list(data.shape), "datatype": "FP32", "data": data.tolist()}]}
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        barrier.wait()  # all 64 requests of a round leave together, so that batching servers batch them
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as e:
            sys.exit(f"check_server.py: {url} answered {e.code}: {e.read()[:500]!r}")
        check(url, answer["outputs"][0]["data"], want)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(call, slices(expected, rows)))


def output_values(response) -> np.ndarray:
    output = response.outputs[0]
    if response.raw_output_contents:
        dtype = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64}[output.datatype]
        return np.frombuffer(response.raw_output_contents[0], dtype=dtype)
    contents = output.contents
    fields = ("int64_contents", "int_contents", "uint64_contents", "uint_contents", "fp32_contents", "fp64_contents")
    for field in fields:
        values = getattr(contents, field)
        if len(values):
            return np.array(values)
    return np.array([])


def grpc_check(address: str, model: str, expected: dict, rows: int, frame: Path | None) -> None:
    import grpc

    from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
    from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    sys.path.insert(0, str(Path(__file__).parent))
    from request_body import infer_request

    with grpc.insecure_channel(address) as channel:
        size = None
        if frame is not None:  # the benchmark's own bytes, sent as they are
            raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            answer = raw_call(frame.read_bytes()[5:], timeout=30)
            _, want = next(slices(expected, rows))
            check(f"{address} (benchmark message)", output_values(pb.ModelInferResponse.FromString(answer)), want)
            size = 5 + len(answer)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        batch = list(slices(expected, rows))
        for start in range(0, len(batch), CONCURRENCY):
            calls = [
                (stub.ModelInfer.future(infer_request(model, data.tolist()), timeout=30), want)
                for data, want in batch[start : start + CONCURRENCY]
            ]
            for call, want in calls:
                try:
                    check(address, output_values(call.result()), want)
                except grpc.RpcError as e:
                    sys.exit(f"check_server.py: {address} answered {e.code().name}: {e.details()}")
    if size is not None:
        print(size)


def main(argv: list[str]) -> None:
    if argv[:1] == ["rest"] and len(argv) == 4:
        rest(argv[1], json.loads(Path(argv[2]).read_text()), int(argv[3]))
    elif argv[:1] == ["grpc"] and len(argv) in (5, 6):
        frame = Path(argv[5]) if len(argv) == 6 else None
        grpc_check(argv[1], argv[2], json.loads(Path(argv[3]).read_text()), int(argv[4]), frame)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
