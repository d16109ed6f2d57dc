"""Backends run the replicas of revisions; `local` runs them as processes on this machine."""

from wharf.control.backends.local import LocalBackend
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.resources import ReplicaResources
from wharf.control.backends.settings import LocalBackendSettings, ResourceSettings

__all__ = [
    "LocalBackend", "LocalBackendSettings", "ReplicaResources", "ReplicaSpec", "ReplicaState", "ResourceSettings",
]  # fmt: skip
