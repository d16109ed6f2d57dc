"""Wharf's Python SDK: `Wharf` (blocking) and `AsyncWharf` (asyncio) over the control API and the gateway, typed
with the control plane's spec models (`wharf.control.spec`), with typed status views and errors. A layer above
`wharf.client` (whose clients it uses) and `wharf.control.spec`, so that `wharf.client` stays free of the control
plane and a transformer's replica never loads it."""

from wharf.sdk.client import AsyncWharf, Wharf
from wharf.sdk.errors import NotReady
from wharf.sdk.views import (
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
