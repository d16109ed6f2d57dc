"""A bandit service over gRPC, through a real gateway: ModelInfer answers carry the request id and the revision
(`x-wharf-arm`) in their initial metadata, and the service's REST `/feedback` rewards that revision."""

from __future__ import annotations

import random

import grpc
import httpx
import pytest

from wharf.gateway import Gateway, Replica, Revision, RouteTable, Service
from wharf.gateway.bandits import service_bandit
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

from .test_grpc_proxy import INFER, start_replica

pytestmark = pytest.mark.anyio


async def test_a_grpc_answer_names_its_revision_and_its_rest_feedback_rewards_it() -> None:
    server, target = await start_replica("first")
    revision = Revision("iris-1", (Replica("first", "http://unused:1", target, True),), 5.0)
    iris = Service("default", "iris", "iris", (("iris-1", 100),), {}, {"iris-1": revision}, bandit=True)
    gateway = Gateway(rng=random.Random(0))
    gateway.update(RouteTable((iris,)))
    http_port, grpc_port = await gateway.start("127.0.0.1", 0, 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            infer = channel.unary_unary(INFER)
            request = pb.ModelInferRequest(model_name="iris").SerializeToString()
            metadata = (("x-wharf-service", "default/iris"),)
            call = infer(request, metadata=metadata, timeout=10)
            await call
            initial = dict(await call.initial_metadata())
            assert initial["x-wharf-arm"] == "iris-1" and initial["x-replica"] == "first"
            request_id = initial["x-request-id"]
            assert "x-request-id" in dict(await call.trailing_metadata())["x-seen"]  # the replica got it too
            mine = infer(request, metadata=(*metadata, ("x-request-id", "mine")), timeout=10)
            await mine
            assert dict(await mine.initial_metadata())["x-request-id"] == "mine"
        key = service_bandit("default", "iris")
        assert gateway.bandits.view(key, ["iris-1"])[0].pulls == 2
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            answer = await client.post("/serving/default/iris/feedback", json={"request_id": request_id, "reward": 1})
            assert answer.status_code == 200 and answer.json()["arms"] == ["iris-1"], answer.text
        (arm,) = gateway.bandits.view(key, ["iris-1"])
        assert (arm.pulls, arm.rewards, arm.reward_sum) == (2, 1, 1.0)
    finally:
        await gateway.stop(0)
        await server.stop(0)
