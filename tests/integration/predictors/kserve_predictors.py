"""KServe custom predictors written as KServe's documentation writes them (subclasses of `kserve.Model`), for
test_kserve_predictor.py. This directory is deliberately not on any path: `wharf serve` imports it as its current
directory."""

from __future__ import annotations

from typing import Any

from kserve import InferRequest, InferResponse, Model
from kserve.utils.utils import get_predict_input, get_predict_response


class Scaler(Model):
    """Plain steps, over V1 and V2 through KServe's own helpers; the factor may come in an `x-factor` header."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.factor: float | None = None

    def load(self) -> bool:
        self.factor = 2.0
        self.ready = True
        return self.ready

    def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> Any:
        return payload

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        factor = float((headers or {}).get("x-factor", self.factor))
        return get_predict_response(payload, get_predict_input(payload) * factor, self.name)


class Greeter(Model):
    """Async steps over V1 row objects: preprocess picks names, predict greets, postprocess shapes the answer (no
    load: kserve.Model's own makes it ready)."""

    async def preprocess(self, payload: dict, headers: dict[str, str] | None = None) -> list[str]:
        return [row["name"] for row in payload["instances"]]

    async def predict(self, names: list[str], headers: dict[str, str] | None = None) -> list[str]:
        return [f"hello {name}" for name in names]

    async def postprocess(self, greetings: list[str], headers: dict[str, str] | None = None) -> dict:
        return {"predictions": [{"greeting": g, "length": len(g)} for g in greetings]}


class NeverReady(Model):
    """A load() that forgets to set `self.ready`: KServe would not register it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def load(self) -> bool:
        return False
