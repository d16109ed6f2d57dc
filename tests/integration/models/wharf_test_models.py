"""Custom models served by the integration tests (`wharf serve wharf_test_models:Echo`)."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from wharf import InferRequest, InferResponse, Model, Tensor, TensorSpec, Transformer, request_headers


class Echo(Model):
    """Returns every input unchanged, as an output of the same name."""

    strict_inputs = False

    def predict(self, payload: InferRequest) -> InferResponse:
        return InferResponse(
            model_name=self.name,
            outputs=[Tensor(t.name, t.data, t.datatype, t.parameters) for t in payload.inputs],
            parameters=payload.parameters or None,
        )


class Slow(Model):
    """Sleeps for the number of seconds in input `seconds`, then returns it (a blocking, synchronous model)."""

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        seconds = payload.named()["seconds"]
        time.sleep(float(seconds.reshape(-1)[0]))
        return {"slept": seconds}


class AsyncDoubler(Model):
    """An async model with pre- and post-processing: doubles `x`, then adds one in postprocess."""

    def preprocess(self, request: InferRequest) -> np.ndarray:
        return request.named()["x"].astype(np.float64)

    async def predict(self, payload: np.ndarray) -> np.ndarray:
        await asyncio.sleep(0)
        return payload * 2

    def postprocess(self, result: np.ndarray) -> dict[str, np.ndarray]:
        return {"y": result + 1}

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("x", "FP64", [-1])]


class Broken(Model):
    """Fails every prediction with an unexpected error."""

    def predict(self, payload: InferRequest) -> None:
        raise RuntimeError("boom")


class FailsToLoad(Model):
    def load(self) -> None:
        raise OSError("weights missing")


class BatchProbe(Model):
    """Row sums of `x` after a short pause, with the number of rows each call saw; refuses negative numbers."""

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        x = payload.named()["x"]
        if (x < 0).any():
            raise ValueError("negative numbers are not allowed")
        time.sleep(0.02)
        return {"sum": x.sum(axis=1), "rows_in_call": np.full(len(x), len(x))}


class Weighted(Model):
    """Scores rows of 3 features with fixed weights; `explain` gives each feature's contribution, after sleeping
    EXPLAIN_SLEEP_S seconds (environment). Rows of another width are refused (ValueError)."""

    weights = np.array([0.5, -1.0, 2.0])

    def predict(self, payload: InferRequest) -> np.ndarray:
        return self._rows(payload) @ self.weights

    def explain(self, payload: InferRequest) -> dict[str, object]:
        time.sleep(float(os.environ.get("EXPLAIN_SLEEP_S", "0")))
        contributions = self._rows(payload) * self.weights
        return {"explanations": [{"contributions": c, "score": float(c.sum())} for c in contributions]}

    def _rows(self, payload: InferRequest) -> np.ndarray:
        x = payload.inputs[0].data.astype(np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.weights):
            raise ValueError(f"rows must have {len(self.weights)} features, got shape {list(x.shape)}")
        return x


class Headers(Model):
    """Answers with the `traceparent` and `x-request-id` of the request it serves ("TRACEPARENT|ID", BYTES)."""

    strict_inputs = False

    async def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        seen = request_headers()
        text = f"{seen.get('traceparent', '')}|{seen.get('x-request-id', '')}"
        return {"seen": np.array([text.encode()], dtype=object)}


class WhoAmI(Model):
    """Answers with the value of the environment variable WHO (telling revisions apart) after sleeping SLEEP
    seconds; fails if WHO is 'broken'."""

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        time.sleep(float(os.environ.get("SLEEP", "0")))
        who = os.environ.get("WHO", "?")
        if who == "broken":
            raise RuntimeError("this revision is broken")
        return {"who": np.array([who.encode()] * len(payload.inputs[0].data), dtype=object)}


class RowSum(Model):
    """Sums each row's features, taking SLEEP_PER_ROW_S seconds a row (at most 10 s a call): a predictor that large
    calls keep busy."""

    def predict(self, payload: InferRequest) -> np.ndarray:
        rows = payload.inputs[0].data.astype(np.float64)
        rows = rows.reshape(len(rows), -1)
        time.sleep(min(len(rows) * float(os.environ.get("SLEEP_PER_ROW_S", "0")), 10.0))
        return rows.sum(axis=1)


class Add(Model):
    """Adds the number in the environment variable ADD to its input (for chaining models in graphs)."""

    def predict(self, payload: InferRequest) -> np.ndarray:
        return payload.inputs[0].data.astype(np.float64) + float(os.environ.get("ADD", "0"))


class Scale(Transformer):
    """Multiplies its input by the environment variable FACTOR before the predictor, and names the predictor's
    answer `y` (with the transformer's process id as `pid`, to count replicas)."""

    def preprocess(self, request: InferRequest) -> dict[str, np.ndarray]:
        tensor = request.inputs[0]
        return {tensor.name: tensor.data.astype(np.float64) * float(os.environ.get("FACTOR", "1"))}

    def postprocess(self, response: InferResponse) -> dict[str, np.ndarray]:
        y = response.outputs[0].data
        return {"y": y, "pid": np.full(len(y), os.getpid())}


class Hog(Model):
    """Allocates, and keeps, the number of MiB in input `mib` (pages written, so the process holds them); answers
    with the MiB it holds in all, its process id and the GPUs it sees (CUDA_VISIBLE_DEVICES, `unset` without it):
    the test model of `resources`."""

    def load(self) -> None:
        self.held: list[np.ndarray] = []

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        mib = int(payload.named()["mib"].reshape(-1)[0])
        self.held.append(np.ones(mib << 20, dtype=np.uint8))
        return {
            "held_mib": np.array([sum(a.nbytes for a in self.held) >> 20]),
            "pid": np.array([os.getpid()]),
            "gpus": np.array([os.environ.get("CUDA_VISIBLE_DEVICES", "unset").encode()], dtype=object),
        }
