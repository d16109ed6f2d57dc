"""The gateway: routes REST and gRPC requests to the replicas of InferenceService revisions.

The control plane hands it a `RouteTable` (plain data) with `Gateway.update`, reads `Gateway.stats` and hears of
demand for revisions without a ready replica through `Gateway.on_demand`; the gateway never reaches into the
control plane.
"""

from wharf.gateway.activator import ActivationFailed
from wharf.gateway.app import Gateway
from wharf.gateway.balancer import ReplicaUnavailable
from wharf.gateway.routes import Replica, Revision, RouteTable, Service
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.stats import RevisionStats

__all__ = [
    "ActivationFailed",
    "Gateway",
    "GatewaySettings",
    "Replica",
    "ReplicaUnavailable",
    "Revision",
    "RevisionStats",
    "RouteTable",
    "Service",
]
