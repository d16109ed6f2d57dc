"""The protocol-neutral core of the model server: every transport (REST, gRPC) decodes, calls this, encodes.

The server is ready once it serves and while every model of its repository is loaded: a replica with a model
unloaded (or failing to load) is taken out of rotation rather than answering 503 for it. Models loaded on demand
(the repository's catalogue, and models evicted) do not count: they load on a request, which waits for the load
within its deadline (`loaded`). The repository API (load, unload, index, memory) can be turned off (`ServerSettings.repository_api`, WHARF_REPOSITORY_API=off), as the
control plane does for the replicas it runs: its calls are then refused (403, PERMISSION_DENIED).

Explanations (`explain`) come in two shapes: JSON for KServe V1 `:explain` (`explain_as_json`) and a V2 infer
response (`explain_as_response`) for V2 `/explain`, gRPC and the `{name}-explainer` alias, which transports look up
(`explained`) only once a name is not found, so that inference pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wharf import __version__
from wharf.errors import (
    Forbidden,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    RequestTimeout,
    ServerBusy,
    Unimplemented,
    WharfError,
)
from wharf.model.base import Model, check_inputs, is_async, overrides, to_response, unexplained
from wharf.model.catalogue import Registration
from wharf.model.repository import ModelRepository
from wharf.protocol import explanation
from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import InferRequest, InferResponse
from wharf.server.metrics import ServerMetrics
from wharf.server.pipeline import BatchPolicy, ModelPipeline, shared_threads
from wharf.server.runner import ThreadRunner
from wharf.server.settings import ServerSettings

log = logging.getLogger(__name__)

EXTENSIONS = ["model_repository", "binary_tensor_data", explanation.EXTENSION]
#: What transports call to answer a V2 request with a V2 response: `DataPlane.infer` or `explain_as_response`.
Answer = Callable[[Model, InferRequest], Awaitable[InferResponse]]


class DataPlane:
    def __init__(self, repository: ModelRepository, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.repository = repository
        self.metrics = metrics
        self.request_timeout_s = settings.request_timeout_s
        self.threads = settings.predict_threads
        self.max_queue = settings.max_queued_requests
        self.batch_policy = BatchPolicy(settings.max_batch_size, settings.max_batch_latency_ms / 1000)
        self.started = False
        self.repository_api = settings.repository_api
        self._pipelines: dict[tuple[str, str | None], ModelPipeline] = {}
        self._explanation_threads = ThreadPoolExecutor(self.threads, thread_name_prefix="explain")
        self._explanations_waiting = settings.max_queued_explanations
        self._explanation_slots = threading.BoundedSemaphore(self.threads + self._explanations_waiting)
        repository.in_flight = metrics.in_flight_of
        repository.on_unloaded = self._drop_pipeline
        repository.drain_timeout_s = settings.drain_timeout_s
        self._modules_settled = len(sys.modules)
        self._shared: ThreadRunner | None = None

    # -- health and metadata ----------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.started and self.repository.ready()

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "wharf", "version": __version__, "extensions": EXTENSIONS}

    def model_names(self) -> list[str]:
        """Every model of the repository, ready or not (KServe's V1 list)."""
        return self.repository.names()

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self.repository.is_ready(name, version)

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        return {
            "name": model.name,
            "versions": self.repository.versions(name),
            "platform": model.platform,
            "inputs": [spec.as_dict() for spec in model.inputs()],
            "outputs": [spec.as_dict() for spec in model.outputs()],
        }

    def model(self, name: str, version: str | None = None) -> Model:
        """The ready model answering `name` (raises ModelNotFound / ModelNotReady, or NotLoaded for a model loaded
        on demand that is not in memory: then transports await `loaded`)."""
        return self.repository.serving(name, version)

    async def loaded(self, name: str, version: str | None = None) -> Model:
        """The model answering `name`, loaded first (the request waits for the load within its deadline)."""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                model = await self.repository.acquire(name, version)
        except TimeoutError:
            raise RequestTimeout(f"model '{name}' did not load within {self.request_timeout_s} s") from None
        self._settle_imports()
        return model

    def explained(self, name: str, version: str | None, not_found: ModelNotFound) -> Model:
        """The model that `name`, not found (`not_found`), asks explanations of: `{model}-explainer` names `model`
        (else `not_found` is raised). Transports call it only on their not-found path."""
        model_name = name.removesuffix(explanation.EXPLAINER_SUFFIX)
        if model_name != name:
            try:
                return self.repository.get(model_name, version)
            except ModelNotFound:
                pass
        raise not_found

    # -- inference --------------------------------------------------------------------------------------------
    async def infer(self, model: Model, request: InferRequest) -> InferResponse:
        """Run `request` through `model` (preprocess, predict, postprocess) within the request deadline."""
        if not model.ready:  # picked before it was unloaded: no pipeline (threads) may be rebuilt for it
            raise _unready(model)
        check_inputs(model, request)
        try:  # (a try, not a context manager: this is every request's path)
            result = await self._pipeline(model).run(request)
        except WharfError:
            raise
        except (ValueError, TypeError) as e:
            raise _rejected(model, e) from e
        return to_response(model, result, request)

    async def explain(self, model: Model, request: InferRequest) -> Any:
        """`model.explain` of what `model.preprocess` makes of `request`, within the request deadline.

        Explanations are rare and slow: they run outside the models' batching and worker threads, in the server's
        explanation threads (`predict_threads` of them), for which at most `max_queued_explanations` more wait;
        more explanations at once answer 503. Past the deadline the caller is answered 504: one still waiting is
        dropped, one running keeps its thread until it finishes, on its own.
        """
        if not model.ready:
            raise _unready(model)
        if not overrides(model, "explain"):
            raise unexplained(model.name)
        check_inputs(model, request)
        try:
            async with asyncio.timeout(self.request_timeout_s):
                payload = request
                if overrides(model, "preprocess"):
                    payload = await self._explaining(model, "preprocess", payload)
                return await self._explaining(model, "explain", payload)
        except TimeoutError:
            raise RequestTimeout(f"model '{model.name}' did not explain within {self.request_timeout_s} s") from None
        except WharfError:
            raise
        except (ValueError, TypeError) as e:
            raise _rejected(model, e) from e

    async def explain_as_json(self, model: Model, request: InferRequest) -> Any:
        """`explain`, as V1 `:explain` answers it: an `Explanation`'s V1 body, else what the model returned."""
        result = await self.explain(model, request)
        return result.v1 if isinstance(result, Explanation) else result

    async def explain_as_response(self, model: Model, request: InferRequest) -> InferResponse:
        """`explain`, as a V2 infer response answering `request`: an `Explanation`'s tensors, with the method in
        its parameters, or the `InferResponse` the model made; a model explaining in JSON only is refused (501)."""
        result = await self.explain(model, request)
        if isinstance(result, Explanation):
            result = result.response(model.name)
        elif not isinstance(result, InferResponse):
            raise Unimplemented(
                f"model '{model.name}' explains its predictions in JSON only, which a V2 response cannot carry; "
                f"ask KServe V1: POST /v1/models/{model.name}:explain"
            )
        return to_response(model, result, request)

    async def _explaining(self, model: Model, method: str, payload: Any) -> Any:
        """`model.method(payload)`: awaited when async, else in an explanation thread (in the request's context),
        waiting for one if there is room to wait (a caller that stops waiting cancels a call not started:
        asyncio.wrap_future does)."""
        step = getattr(model, method)
        if is_async(model, method):
            return await step(payload)
        if not self._explanation_slots.acquire(blocking=False):
            raise ServerBusy(
                f"all {self.threads} explanation threads are busy and {self._explanations_waiting} explanations"
                " wait for them (WHARF_PREDICT_THREADS, WHARF_MAX_QUEUED_EXPLANATIONS); try again later"
            )
        # in the request's context: its headers and current span, which the explainer's calls of its predictor carry
        future = self._explanation_threads.submit(contextvars.copy_context().run, step, payload)
        future.add_done_callback(lambda _: self._explanation_slots.release())  # when the thread is done with it
        return await asyncio.wrap_future(future)

    def _pipeline(self, model: Model) -> ModelPipeline:
        key = (model.name, model.version)
        pipeline = self._pipelines.get(key)
        if pipeline is None or pipeline.model is not model:
            if pipeline is not None:
                pipeline.close()
            pipeline = self._pipelines[key] = ModelPipeline(
                model,
                threads=self.threads,
                max_queue=self.max_queue,
                timeout_s=self.request_timeout_s,
                policy=self.batch_policy,
                observer=self.metrics.model_observer(model.name),
                shared=self._shared_threads() if self.repository.on_demand(model) else None,
            )
        return pipeline

    def _shared_threads(self) -> ThreadRunner:
        """The worker threads models loaded on demand share (`predict_threads` of them, one queue of
        `max_queued_requests`): with a thread per model, requests spread over a thousand models each woke a thread
        of its own, and a replica answered about 0.4x the requests of a single-model server (bench/mms.py)."""
        if self._shared is None:
            self._shared = shared_threads(
                threads=self.threads,
                max_queue=self.max_queue,
                timeout_s=self.request_timeout_s,
                observer=self.metrics.shared_observer(),
            )
        return self._shared

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.close()
        self._pipelines.clear()
        if self._shared is not None:
            self._shared.close()
        self._explanation_threads.shutdown(wait=False, cancel_futures=True)

    # -- model repository -------------------------------------------------------------------------------------
    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        self._repository_api_on()
        rows = self.repository.index()
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    def repository_memory(self) -> dict[str, Any]:
        """The replica's memory budget and use, models loaded, loads, evictions and cache hits."""
        self._repository_api_on()
        return self.repository.memory()

    async def load(self, name: str, parameters: Any = None) -> None:
        """Load `name` of the repository, or with `parameters`, register it in the catalogue (`Registration`)."""
        self._repository_api_on()
        if parameters is None or parameters == {}:
            await self.repository.load(name)
            settle_heap()
            return
        registration = Registration.parse(name, parameters)
        await self.repository.load_registered(name, registration)
        self._settle_imports()

    async def unload(self, name: str) -> None:
        self._repository_api_on()
        await self.repository.unload(name)

    def _drop_pipeline(self, model: Model) -> None:
        """Stop the worker threads of `model`, unloaded or evicted (once the requests they hold are answered)."""
        pipeline = self._pipelines.get((model.name, model.version))
        if pipeline is not None and pipeline.model is model:
            del self._pipelines[(model.name, model.version)]
            pipeline.close()

    def _settle_imports(self) -> None:
        """Settle the heap after a load while serving: in full (`settle_heap`) once a load has imported modules
        (its framework, on the first load of a model of that format), else at a young collection's cost (well
        under a millisecond) before freezing what the load made. Left in the collected generations, a framework's
        objects made a replica loading models on demand answer about half as many requests, and a thousand
        models' objects doubled its p99 (full collections walk them again and again: bench/mms.py). A frozen model
        is still freed once nothing refers to it: an evicted model's pipeline drops its reference to itself."""
        if len(sys.modules) != self._modules_settled:
            settle_heap()
            self._modules_settled = len(sys.modules)
        else:
            gc.collect(1)
            gc.freeze()

    def _repository_api_on(self) -> None:
        if not self.repository_api:
            raise Forbidden(
                "the repository API (load, unload, index) is turned off on this server; "
                "start it with WHARF_REPOSITORY_API=on to offer it"
            )


def settle_heap() -> None:
    """Move everything loaded so far (frameworks, models) out of the garbage collector's way: a full collection
    then walks only what requests allocate, instead of stalling every request for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def _unready(model: Model) -> ModelNotReady:
    return ModelNotReady(f"model '{model.name}' is not ready (unloaded)")


def _rejected(model: Model, error: Exception) -> InvalidInput:
    """A model's ValueError/TypeError: the caller's bad input (400)."""
    return InvalidInput(f"model '{model.name}' rejected the input: {error}")
