"""Transformers: models whose `predict` is a call to another model server, between `preprocess` and `postprocess`.

A transformer runs in replicas of its own, in front of a predictor (`spec.transformer` of an InferenceService).
Subclasses write `preprocess` (a client's request -> the predictor's request) and `postprocess` (the predictor's
response -> the client's answer); `predict` sends what `preprocess` returned to the predictor over the protocol the
predictor speaks: KServe V1 or Open Inference Protocol V2 over REST, or V2 over gRPC. `explain` asks the predictor's
V1 `:explain` (over REST) for an explanation of it.

Where the predictor is comes from the environment (`WHARF_PREDICTOR_*`, see `PredictorSettings`). `wharf up` sets
it to the gateway and the predictor's own host there, so the predictor keeps its rollouts and autoscaling; for
`wharf serve`, point WHARF_PREDICTOR_URL (or WHARF_PREDICTOR_GRPC_TARGET) at any model server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.client.inference import InferenceClient
from wharf.errors import (
    ConfigurationError,
    PredictorFailed,
    RequestTimeout,
    ServerBusy,
    ServerUnreachable,
    Unimplemented,
    WharfError,
)
from wharf.model.base import Model
from wharf.model.context import propagated_headers
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor


class PredictorSettings(BaseSettings):
    """Where a transformer's predictor is and how to call it: the environment variables `WHARF_PREDICTOR_*`
    (`wharf up` sets them, see `wharf.control.plan.predictor_env`)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_PREDICTOR_", extra="ignore")

    url: str | None = Field(None, description="the predictor's (or the gateway's) HTTP base URL")
    grpc_target: str | None = Field(None, description="host:port of its gRPC endpoint, for protocol grpc-v2")
    protocol: Literal["v1", "v2", "grpc-v2"] = "v1"
    model: str | None = Field(None, description="the model to call (default: the transformer's own name)")
    host: str | None = Field(None, description="HTTP Host header to send: the predictor's host on the gateway")
    service: str | None = Field(None, description="x-wharf-service gRPC metadata: namespace/name on the gateway")
    caller: str | None = Field(
        None,
        description="x-wharf-caller header and gRPC metadata: who calls (namespace/service/component), which"
        " the gateway counts its calls under (its service graph)",
    )
    timeout_s: float = Field(60.0, gt=0)

    def check(self, caller: str) -> None:
        """Refuse settings that name no predictor for the protocol; `caller` says who needs it (`transformer 'x'`)."""
        address = self.grpc_target if self.protocol == "grpc-v2" else self.url
        if not address:
            needed = "WHARF_PREDICTOR_GRPC_TARGET" if self.protocol == "grpc-v2" else "WHARF_PREDICTOR_URL"
            raise ConfigurationError(f"{caller} does not know its predictor: set {needed}")

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of an `InferenceClient` (or `SyncInferenceClient`) of the predictor, beside `url`."""
        return {
            "grpc_target": self.grpc_target,
            "protocol": self.protocol,
            "timeout_s": self.timeout_s,
            "headers": _present({"host": self.host, "x-wharf-caller": self.caller}),
            "metadata": _present({"x-wharf-service": self.service, "x-wharf-caller": self.caller}),
        }


def _present(values: dict[str, str | None]) -> dict[str, str] | None:
    """The headers (or metadata) that have a value; None if none has."""
    return {key: value for key, value in values.items() if value} or None


# Predictor errors a transformer answers with as they are: the predictor's state, not a fault in the exchange.
# (A client raises a predictor's 503 / UNAVAILABLE as ServerBusy, never as ModelNotReady.)
_PASSED_ON = (ServerBusy, RequestTimeout, ServerUnreachable)


class Transformer(Model):
    """Base class of transformers: `preprocess`, then the predictor, then `postprocess`.

    `preprocess` may return an `InferRequest`, a mapping of input name to array, or one array (sent as input
    `input-0`); `postprocess` receives the predictor's `InferResponse` (over V1: one output, `predictions`).
    """

    strict_inputs = False
    supports_batching = False  # a transformer forwards each request; the predictor batches

    def __init__(self, name: str, version: str | None = None, predictor: PredictorSettings | None = None) -> None:
        super().__init__(name, version)
        self.predictor = predictor or PredictorSettings()
        self._client: InferenceClient | None = None

    def load(self) -> None:
        self.predictor.check(f"transformer {self.name!r}")

    async def predict(self, payload: Any) -> InferResponse:
        """Send `payload` (what `preprocess` returned) to the predictor and return its response.

        The predictor refusing or failing the request is this service's fault, not its client's (a 502 naming the
        predictor's answer); a predictor that is busy, not ready, unreachable or too slow keeps its own status, and
        a request the client refuses before sending it (say, one V1 cannot carry) is answered as that error.
        """
        return await self._forward(self.client.infer, payload)

    async def explain(self, payload: Any) -> Any:
        """The predictor's V1 `:explain` of `payload` (what `preprocess` returned), with errors as for `predict`;
        a predictor that does not explain makes the transformer answer 501 too."""
        return await self._forward(self.client.explain, payload, (*_PASSED_ON, Unimplemented))

    async def _forward(
        self,
        call: Callable[..., Awaitable[Any]],
        payload: Any,
        passed_on: tuple[type[WharfError], ...] = _PASSED_ON,
    ) -> Any:
        """`call` the predictor with `payload`, and with the trace headers of the request being served."""
        model = self.predictor.model or self.name
        try:
            return await call(model, as_request(payload), headers=propagated_headers())
        except WharfError as e:
            if not e.answered or isinstance(e, passed_on):
                raise
            raise PredictorFailed(f"predictor '{model}' answered {e.http_status}: {e.message}") from e

    async def unload(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> InferenceClient:
        """The predictor's client, made on first use (in the event loop that will use it)."""
        if self._client is None:
            self._client = InferenceClient(self.predictor.url, **self.predictor.client_options())
        return self._client


def as_request(payload: Any) -> InferRequest:
    """An `InferRequest` of what a transformer's `preprocess` returned."""
    if isinstance(payload, InferRequest):
        return payload
    if isinstance(payload, Mapping):
        return InferRequest(inputs=[Tensor(name, np.asarray(value)) for name, value in payload.items()])
    return InferRequest(inputs=[Tensor("input-0", np.asarray(payload))])
