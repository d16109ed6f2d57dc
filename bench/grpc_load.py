"""A gRPC load generator for bench/floors.py (h2load, which bench/grpc_iris.sh uses, is not everywhere): CONCURRENCY
calls of the iris 1-row ModelInfer kept in flight over one grpc.aio channel for SECONDS. Its own rate is bounded by
Python's (a few thousand calls/s), so read the server's CPU per call from it, not the calls/s.

    python bench/grpc_load.py TARGET SECONDS CONCURRENCY

Prints one line of JSON: {"calls", "per_s", "errors"}.
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
import orjson
import uvloop

from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc


async def main(target: str, seconds: float, concurrency: int) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([5.1, 3.5, 1.4, 0.2])
    request = pb.ModelInferRequest(model_name="iris", inputs=[tensor])
    calls = errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
        end = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal calls, errors
            while time.perf_counter() < end:
                try:
                    await infer(request, timeout=10)
                    calls += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    print(orjson.dumps({"calls": calls, "per_s": calls / wall, "errors": errors}).decode())


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
