"""The floor of Python's grpc.aio server on this machine: a ModelInfer that answers a constant response, with no
model and no decoding. What Wharf's own gRPC path costs is what it takes beyond this.

    python bench/diagnosis/grpc_floor.py PORT [asyncio|uvloop]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import uvloop

from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

ANSWER = pb.ModelInferResponse(
    model_name="iris",
    outputs=[
        pb.ModelInferResponse.InferOutputTensor(
            name="predict", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[0])
        )
    ],
)


class ConstantAnswer(pb_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        return ANSWER


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(ConstantAnswer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    run = uvloop.run if sys.argv[2:] == ["uvloop"] else asyncio.run
    run(serve(int(sys.argv[1])))
