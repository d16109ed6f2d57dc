"""The protocol-neutral core of the model server: every transport (REST, gRPC) decodes, calls this, encodes."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wharf import __version__
from wharf.errors import InvalidInput, RequestTimeout, WharfError
from wharf.model.base import Model, check_inputs, overrides, to_response
from wharf.model.repository import ModelRepository
from wharf.protocol.v2 import InferRequest, InferResponse

log = logging.getLogger(__name__)

EXTENSIONS = ["model_repository", "binary_tensor_data"]
Runner = Callable[[Any], Awaitable[Any]]


class DataPlane:
    def __init__(self, repository: ModelRepository, executor: ThreadPoolExecutor, request_timeout_s: float) -> None:
        self.repository = repository
        self.executor = executor
        self.request_timeout_s = request_timeout_s
        self.started = False
        self._runners: dict[tuple[str, str | None], tuple[Model, Runner]] = {}

    # -- health and metadata ----------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.started

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "wharf", "version": __version__, "extensions": EXTENSIONS}

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
        """The ready model answering `name` (raises ModelNotFound / ModelNotReady)."""
        return self.repository.get(name, version)

    # -- inference --------------------------------------------------------------------------------------------
    async def infer(self, model: Model, request: InferRequest) -> InferResponse:
        """Run `request` through `model` (preprocess, predict, postprocess) within the request deadline."""
        check_inputs(model, request)
        runner = self._runner(model)
        try:
            async with asyncio.timeout(self.request_timeout_s):
                result = await runner(request)
        except WharfError:
            raise
        except TimeoutError:
            raise RequestTimeout(f"model '{model.name}' did not answer within {self.request_timeout_s} s") from None
        except (ValueError, TypeError) as e:
            raise InvalidInput(f"model '{model.name}' rejected the input: {e}") from e
        return to_response(model, result, request)

    def _runner(self, model: Model) -> Runner:
        key = (model.name, model.version)
        cached = self._runners.get(key)
        if cached is None or cached[0] is not model:
            cached = self._runners[key] = (model, self._make_runner(model))
        return cached[1]

    def _make_runner(self, model: Model) -> Runner:
        """One coroutine running the model's steps; plain steps together in a single worker-thread hop."""
        steps = [
            getattr(model, m) for m in ("preprocess", "predict", "postprocess") if m == "predict" or overrides(model, m)
        ]
        loop = asyncio.get_running_loop()
        if not any(inspect.iscoroutinefunction(s) for s in steps):

            def chain(payload: Any) -> Any:
                for step in steps:
                    payload = step(payload)
                return payload

            return lambda payload: loop.run_in_executor(self.executor, chain, payload)

        async def run(payload: Any) -> Any:
            for step in steps:
                if inspect.iscoroutinefunction(step):
                    payload = await step(payload)
                else:
                    payload = await loop.run_in_executor(self.executor, step, payload)
            return payload

        return run

    # -- model repository -------------------------------------------------------------------------------------
    def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        rows = self.repository.index()
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    async def load(self, name: str) -> None:
        await self.repository.load(name)

    async def unload(self, name: str) -> None:
        await self.repository.unload(name)
        for key in [k for k in self._runners if k[0] == name]:
            del self._runners[key]
