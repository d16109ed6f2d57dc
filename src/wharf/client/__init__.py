"""Wharf's Python SDK: `Wharf` and `AsyncWharf` (resources, rollouts and predictions by service name), and the
clients they build on: `InferenceClient` (a model server or the gateway) and `ControlClient` (the control API)."""

from typing import Any

from wharf.client.control import ControlClient, ControlError
from wharf.client.inference import InferenceClient, SyncInferenceClient

__all__ = ["AsyncWharf", "ControlClient", "ControlError", "InferenceClient", "SyncInferenceClient", "Wharf"]


def __getattr__(name: str) -> Any:
    # The SDK reads the control plane's spec models (and what they import); code that only calls a model server,
    # as a transformer does, does not pay for them.
    if name in ("Wharf", "AsyncWharf"):
        from wharf.client import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
