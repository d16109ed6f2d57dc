"""The predictor as a function of rows, for the explanation methods that call it over the protocol (Kernel SHAP,
ART's black-box attacks, and tree SHAP's check at load time).

Explanations run in the model server's explanation threads, so each thread gets a `SyncInferenceClient` of its own
(made as a transformer makes its client, from `WHARF_PREDICTOR_*`); each call has the predictor's timeout
(WHARF_PREDICTOR_TIMEOUT_S) and the trace headers of the request explained (the threads run in its context). Rows
go as one FP64 tensor `[rows, values]` named `input-0`.

Which output is explained: the configured one (over V2 and gRPC a requested output; over V1, where a request names
no output, the request parameter `method`, which Wharf's tabular runtimes read), else the probabilities where the
model offers them (the output `predict_proba`, or over V1 the method, tried once at the first call: a model without
it refuses it, and a model that ignores the parameter answers as without it), else the model's one output (V1:
`predictions`). Outputs that are not numbers cannot be explained: InvalidInput, naming the output.
A predictor refusing or failing a call is a 502 naming its answer; busy, slow or unreachable keeps its status.
"""

from __future__ import annotations

import threading

import numpy as np

from wharf.client.inference import SyncInferenceClient
from wharf.errors import InvalidInput, PredictorFailed, RequestTimeout, ServerBusy, ServerUnreachable, WharfError
from wharf.model.context import propagated_headers
from wharf.protocol.v2 import InferRequest, InferResponse, RequestedOutput, Tensor
from wharf.transformer import PredictorSettings

INPUT = "input-0"
PROBABILITIES = "predict_proba"
# What the predictor answers with that is its state, not a fault in the exchange: passed on as it is.
_PASSED_ON = (ServerBusy, RequestTimeout, ServerUnreachable)


class Predictor:
    """Calls the predictor `model` (as `settings` say) with rows, answering its numeric output as FP64."""

    def __init__(self, settings: PredictorSettings, model: str, output: str | None = None) -> None:
        self.settings = settings
        self.model = model
        #: The output explained: None until the first call settles it (see the module's docstring).
        self.output: str | None = output
        self._settled = output is not None
        self._local = threading.local()
        self._clients: list[SyncInferenceClient] = []
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The predictor's explained output for `rows` [rows, ...] (sent as [rows, values]) as FP64: one call."""
        tensor = self.answer(rows)
        if tensor.data.dtype.kind not in "biuf":
            raise InvalidInput(
                f"predictor '{self.model}' answers output '{tensor.name}' as {tensor.datatype}, not numbers: "
                "it cannot be explained (name a numeric output, e.g. predict_proba, as the explainer's `output`)"
            )
        return tensor.data.astype(np.float64, copy=False)

    def answer(self, rows: np.ndarray) -> Tensor:
        """The predictor's explained output for `rows`, as it answers it: one call."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        if not self._settled:
            self._settle(rows)
        return self._explained(self._call(self._request(rows, self.output)))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _settle(self, rows: np.ndarray) -> None:
        """Ask for the probabilities once: a predictor that has no such output answers 400, then its own output."""
        try:
            self._call(self._request(rows[:1], PROBABILITIES))
            self.output = PROBABILITIES
        except PredictorFailed as e:
            if not isinstance(e.__cause__, InvalidInput):
                raise
        self._settled = True

    def _request(self, rows: np.ndarray, output: str | None) -> InferRequest:
        request = InferRequest(inputs=[Tensor(INPUT, rows, "FP64")])
        if output is not None:
            if self.settings.protocol == "v1":
                request.parameters = {"method": output}
            else:
                request.outputs = [RequestedOutput(output)]
        return request

    def _call(self, request: InferRequest) -> InferResponse:
        try:
            return self._client().infer(self.model, request, headers=propagated_headers())
        except WharfError as e:
            if not e.answered or isinstance(e, _PASSED_ON):
                raise
            raise PredictorFailed(f"predictor '{self.model}' answered {e.http_status}: {e.message}") from e

    def _explained(self, response: InferResponse) -> Tensor:
        """The explained output of `response`: the one asked for, else its only one."""
        outputs = {t.name: t for t in response.outputs}
        if self.output is not None and self.settings.protocol != "v1" and self.output in outputs:
            return outputs[self.output]
        if len(outputs) == 1:
            return response.outputs[0]
        raise InvalidInput(
            f"predictor '{self.model}' answers several outputs {sorted(outputs)}; name the one to explain "
            "(the explainer's `output`)"
        )

    def _client(self) -> SyncInferenceClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = SyncInferenceClient(self.settings.url, **self.settings.client_options())
            with self._lock:
                self._clients.append(client)
        return client
