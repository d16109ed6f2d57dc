"""The model as adversarial detection calls it: an async function from rows to the model's probabilities, calling
the predictor through Wharf's gateway with `InferenceClient` (V2 REST, V1 REST or V2 gRPC).

The gateway logs these calls like any other (to the monitor, when the service's logger points at it): each carries
an `x-request-id` starting with `DETECTOR_REQUEST_PREFIX`, which becomes its payload events' id, so the monitor
leaves them out of what it stores and inspects (`is_detector_request`).

Rows go as one FP64 tensor of their own shape, named `input-0` (V2) or as V1 `instances`; the output asked for is
`output` (V2 and gRPC: a requested output, such as `predict_proba` of Wharf's tabular runtimes; V1: the request
parameter `method`, which those runtimes read, and the answer's `predictions`). Errors are `wharf.errors` types:
the predictor's own refusal, `RequestTimeout` after `timeout_s`, `ServerUnreachable`.
"""

from __future__ import annotations

import uuid

import numpy as np

from wharf.client.inference import PREDICTIONS, InferenceClient, Protocol
from wharf.errors import InvalidInput
from wharf.protocol.v2 import InferRequest, RequestedOutput, Tensor

DETECTOR_REQUEST_PREFIX = "wharf-monitor-"
INPUT = "input-0"


def is_detector_request(event_id: str) -> bool:
    """Whether a payload event is of a call the monitor's detectors made."""
    return event_id.startswith(DETECTOR_REQUEST_PREFIX)


class GatewayPredictor:
    """Calls `model` with `client`, answering `output` as float64 [rows, ...]; `close` it when done."""

    def __init__(self, client: InferenceClient, model: str, output: str) -> None:
        self.client = client
        self.model = model
        self.output = output

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        request = InferRequest(inputs=[Tensor(INPUT, np.asarray(rows, dtype=np.float64), "FP64")])
        if self.client.protocol == "v1":
            request.parameters = {"method": self.output}
        else:
            request.outputs = [RequestedOutput(self.output)]
        headers = {"x-request-id": f"{DETECTOR_REQUEST_PREFIX}{uuid.uuid4().hex}"}
        response = await self.client.infer(self.model, request, headers=headers)
        wanted = PREDICTIONS if self.client.protocol == "v1" else self.output
        for tensor in response.outputs:
            if tensor.name == wanted and tensor.data.dtype.kind in "biuf":
                return tensor.data.astype(np.float64, copy=False)
        raise InvalidInput(
            f"model '{self.model}' answered outputs {[t.name for t in response.outputs]}, not numeric '{wanted}'"
        )

    async def close(self) -> None:
        await self.client.close()


def gateway_predictor(
    url: str,
    host: str,
    model: str,
    protocol: Protocol = "v2",
    output: str = "predict_proba",
    timeout_s: float = 10.0,
) -> GatewayPredictor:
    """A predictor calling `model` of the service whose host is `host` (e.g. `iris.default.example.com`) through
    the gateway at `url` (REST: `http://127.0.0.1:8080`; protocol 'grpc-v2': the gateway's gRPC `host:port`, the
    host then going as `host` metadata, as the gateway routes gRPC)."""
    if protocol == "grpc-v2":
        client = InferenceClient(grpc_target=url, protocol=protocol, timeout_s=timeout_s, metadata={"host": host})
    else:
        client = InferenceClient(url, protocol=protocol, timeout_s=timeout_s, headers={"host": host})
    return GatewayPredictor(client, model, output)
