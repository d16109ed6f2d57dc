"""Wharf's Python SDK."""

from wharf.client.control import ControlClient, ControlError
from wharf.client.inference import InferenceClient, SyncInferenceClient

__all__ = ["ControlClient", "ControlError", "InferenceClient", "SyncInferenceClient"]
