"""Backends run the replicas of revisions; `local` runs them as processes on this machine."""

from wharf.control.backends.local import LocalBackend
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.settings import LocalBackendSettings

__all__ = ["LocalBackend", "LocalBackendSettings", "ReplicaSpec", "ReplicaState"]
