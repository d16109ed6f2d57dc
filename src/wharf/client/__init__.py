"""Clients of Wharf's servers: `InferenceClient` (a model server or the gateway) and `ControlClient` (the control
API). They import only `wharf.protocol` (and `wharf.errors`): a transformer's replica loads nothing of the control
plane. Wharf's typed SDK, `Wharf` and `AsyncWharf`, builds on them in `wharf.sdk`."""

from wharf.client.control import ControlClient, ControlError
from wharf.client.inference import InferenceClient, SyncInferenceClient

__all__ = ["ControlClient", "ControlError", "InferenceClient", "SyncInferenceClient"]
