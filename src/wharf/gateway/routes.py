"""The route table the control plane hands the gateway: plain, immutable data.

A `RouteTable` lists the `Service`s (KServe InferenceServices); each has named `Revision`s, a traffic split
over them, tags (`latest`, `prev`, ...) and an optional shadow; each revision has its `Replica`s (model-server
processes). The gateway never changes these objects; the control plane hands it a new table instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wharf.gateway.model_routing import ModelPlacement
from wharf.graph import Node
from wharf.logger import LogTarget


@dataclass(frozen=True, slots=True)
class Replica:
    """One model-server process of a revision."""

    id: str
    http_url: str  # e.g. "http://127.0.0.1:8080", no trailing slash
    grpc_target: str  # e.g. "127.0.0.1:8081"
    ready: bool
    role: str = "replica"  # what the upstream's errors call it (a payload log sink is no replica)


@dataclass(frozen=True, slots=True)
class Revision:
    """An immutable version of a service's predictor, served by its replicas."""

    name: str
    replicas: tuple[Replica, ...]
    timeout_s: float
    container_concurrency: int = 0  # requests in flight per replica; 0: no limit
    logger: LogTarget | None = None  # where its payloads are logged
    failing: str | None = None  # why its replicas keep failing to start: its requests are answered 503 at once
    placement: ModelPlacement | None = None  # a multi-model revision's: which replicas each model's requests go to


@dataclass(frozen=True, slots=True)
class Service:
    """An InferenceService's component: which revisions get which share of its traffic.

    A service with a transformer is two of these: the transformer in front, under the service's name, and the
    predictor behind it as `{name}-predictor` (`front` False), which gRPC requests naming the model do not reach.
    A predictor in front has `{name}-predictor` as an alias, so that, as in KServe, that name reaches the predictor
    of every service. An alias answers like the name (host, tag hosts, `/serving/` path, `x-wharf-service`) unless
    another service has it as its own name.
    """

    namespace: str
    name: str
    model: str  # the model name its predictor serves (KServe's default: the service's name)
    traffic: tuple[tuple[str, int], ...]  # (revision name, percent); the percents sum to 100
    tags: Mapping[str, str]  # tag -> revision name; `{tag}-{name}.{namespace}.{domain}` reaches that revision
    revisions: Mapping[str, Revision]  # by revision name
    shadow: tuple[str, int] | None = None  # (revision name, percent of requests mirrored to it)
    front: bool = True  # whether requests naming `model` (gRPC without x-wharf-service) come here
    aliases: tuple[str, ...] = ()  # other names it answers at in its namespace
    api_keys: frozenset[str] = frozenset()  # SHA-256 digests (hex) of the keys its requests must carry; empty: none
    protocol: str = "v1"  # its protocolVersion: InferenceGraph steps call it with `/v1/...:predict` or `/v2/.../infer`
    explainer: str | None = None  # `namespace/name` of the service its explain requests go to (V1 `:explain`, V2
    # `/explain`); None: they go where its other requests go
    bandit: bool = False  # its rollout is a bandit: answers name their revision (`x-wharf-arm`), `/feedback` rewards

    @property
    def key(self) -> str:
        """`namespace/name`, as the `x-wharf-service` gRPC metadata names it."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    """An InferenceGraph: nodes the gateway runs itself, whose steps call services of the graph's namespace."""

    namespace: str
    name: str
    nodes: Mapping[str, Node]
    step_timeout_s: float
    uid: str = ""  # the resource's: one deleted and applied again is another graph (its bandits start afresh)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Everything the gateway routes to; swapped whole on every change."""

    services: tuple[Service, ...] = ()
    domain: str = "example.com"
    graphs: tuple[Graph, ...] = ()
