"""Wharf's Python SDK: `Wharf` (blocking) and `AsyncWharf` (asyncio) over the control API and the gateway, typed
with the control plane's spec models (`wharf.control.spec`), with typed status views and errors."""

from wharf.client.sdk.client import AsyncWharf, Wharf
from wharf.client.sdk.errors import NotReady
from wharf.client.sdk.views import (
    Applied,
    ComponentStatus,
    Condition,
    Metadata,
    Replica,
    Resource,
    Status,
    TrafficTarget,
    WatchEvent,
)

__all__ = [
    "Applied",
    "AsyncWharf",
    "ComponentStatus",
    "Condition",
    "Metadata",
    "NotReady",
    "Replica",
    "Resource",
    "Status",
    "TrafficTarget",
    "WatchEvent",
    "Wharf",
]
