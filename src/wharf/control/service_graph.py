"""The service graph: which services and graphs call which, from the gateway's own records, with where each
component's revisions run (what Kiali shows of a mesh), for the console and the cost report.

`GET /apis/wharf.dev/v1/servicegraph` (`?namespace=NS`: only the services and graphs of NS and what calls them)
answers:

    {"nodes": [
       {"id": "client", "kind": "Client"},
       {"id": "default/chain", "kind": "InferenceGraph", "namespace": "default", "name": "chain", "ready": true},
       {"id": "default/scaled", "kind": "InferenceService", "namespace": "default", "name": "scaled", "ready": true,
        "components": {"transformer": {"revisions": [{"name": "scaled-transformer-00001", "trafficPercent": 100,
                                                      "shadowPercent": 0,
                                                      "replicas": [{"id": "r0", "ready": true, "pid": 4242,
                                                                    "httpPort": 41001, "grpcPort": 41002}]}]},
                       "predictor": {...}}}],
     "edges": [
       {"source": "client", "sourceComponent": null, "destination": "default/scaled", "component": "transformer",
        "revision": "scaled-transformer-00001", "requests": 20, "errors": 1, "requestsPerSecond": 0.36,
        "errorRatio": 0.05, "p50Ms": 4.2, "p99Ms": 11.0},
       {"source": "default/scaled", "sourceComponent": "transformer", "destination": "default/scaled",
        "component": "predictor", ...},
       {"source": "default/chain", "sourceComponent": null, "destination": "default/add-one", ...},
       {"source": "client", "sourceComponent": null, "destination": "default/chain", "component": null,
        "revision": null, ...}]}

A node's `id` is `namespace/name` (an InferenceService and an InferenceGraph never share one: they would answer
at the same host), or `client` for callers outside Wharf, shown when one called. An edge goes from a node (and,
for a transformer's or explainer's calls, the component that made them) to a component revision of a service, or
to a graph (`component` and `revision` null). Its figures cover the gateway's statistics window
(WHARF_GATEWAY_STATS_WINDOW_S, 60 s by default; `wharf.gateway.edges`): requests per second over the seconds the
window spans, errors are 5xx answers and the gateway's own failures (4xx are not), p50/p99 latencies as the
gateway measured them. A component's revisions are those taking traffic (or shadow traffic) and any an edge
reaches; their replicas are those running now.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from wharf.control.backends import ReplicaState
from wharf.control.graph_plan import GRAPH_KIND
from wharf.control.plan import ISVC_KIND
from wharf.control.store import Resource, Store, revision_prefix
from wharf.gateway.edges import CLIENT, EdgeStats

PATH = "/apis/wharf.dev/v1/servicegraph"


class Replicas(Protocol):
    def replicas(self, revision: str | None = None) -> list[ReplicaState]: ...


def service_graph(
    store: Store, backend: Replicas, edges: Iterable[EdgeStats], namespace: str | None = None
) -> dict[str, Any]:
    """The nodes and edges of the module docstring, of every namespace or of `namespace`; `edges` as the gateway
    reports them (`Gateway.edges`, `GatewayProcess.edges`)."""
    services = store.list(ISVC_KIND, namespace)
    graphs = store.list(GRAPH_KIND, namespace)
    shown = _shown(services, graphs, edges)
    reached: dict[str, set[str]] = {}  # node id -> revisions that edges reach
    for edge in shown:
        if edge["revision"] is not None:
            reached.setdefault(edge["destination"], set()).add(edge["revision"])
    nodes: list[dict[str, Any]] = (
        [{"id": CLIENT, "kind": "Client"}] if any(e["source"] == CLIENT for e in shown) else []
    )
    nodes += [_graph_node(g) for g in graphs]
    nodes += [_service_node(s, backend, reached.get(f"{s.namespace}/{s.name}", set())) for s in services]
    return {"nodes": nodes, "edges": shown}


def graph_edges(store: Store, edges: Iterable[EdgeStats], namespace: str | None = None) -> list[dict[str, Any]]:
    """The edges alone, as `service_graph` shows them (for the cost report, which carries them)."""
    return _shown(store.list(ISVC_KIND, namespace), store.list(GRAPH_KIND, namespace), edges)


def _shown(services: list[Resource], graphs: list[Resource], edges: Iterable[EdgeStats]) -> list[dict[str, Any]]:
    """The edges to `services` and `graphs`, as the API shows them."""
    components = {
        revision_prefix(s.namespace, s.name, component): (f"{s.namespace}/{s.name}", component)
        for s in services
        for component in _routing(s)
    }
    graph_ids = {f"{g.namespace}/{g.name}" for g in graphs}
    return [shown for edge in edges if (shown := _edge(edge, components, graph_ids)) is not None]


def _edge(edge: EdgeStats, components: dict[str, tuple[str, str]], graph_ids: set[str]) -> dict[str, Any] | None:
    """An edge as the API shows it; None when its destination is not shown (another namespace, or gone)."""
    if edge.revision is None:
        if edge.service not in graph_ids:
            return None
        destination, component = edge.service, None
    else:
        found = components.get(edge.revision.rpartition("-")[0])  # revision names: `{prefix}-{number}`
        if found is None:
            return None
        destination, component = found
    source, source_component = edge.source, None
    if source.count("/") == 2:  # a component's calls: `namespace/service/component`
        source, _, source_component = source.rpartition("/")
    return {
        "source": source,
        "sourceComponent": source_component,
        "destination": destination,
        "component": component,
        "revision": edge.revision,
        "requests": edge.requests,
        "errors": edge.errors,
        "requestsPerSecond": edge.requests_per_s,
        "errorRatio": edge.errors / edge.requests if edge.requests else 0.0,
        "p50Ms": edge.p50_ms,
        "p99Ms": edge.p99_ms,
    }


def _routing(service: Resource) -> dict[str, Any]:
    """Each component's routing as the reconciler last wrote it (traffic, desired, shadow)."""
    return (service.status.get("routing") or {}).get("components") or {}


def _ready(resource: Resource) -> bool:
    conditions = resource.status.get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _graph_node(graph: Resource) -> dict[str, Any]:
    return {
        "id": f"{graph.namespace}/{graph.name}",
        "kind": GRAPH_KIND,
        "namespace": graph.namespace,
        "name": graph.name,
        "ready": _ready(graph),
    }


def _service_node(service: Resource, backend: Replicas, reached: set[str]) -> dict[str, Any]:
    """An InferenceService with each component's revisions (those routed, and those in `reached`) and replicas."""
    components = {}
    for component, routing in _routing(service).items():
        traffic: dict[str, int] = routing.get("traffic") or {}
        shadow = routing.get("shadow")
        shadowed = {shadow[0]: shadow[1]} if shadow else {}
        prefix = revision_prefix(service.namespace, service.name, component)
        names = {*traffic, *(routing.get("desired") or {}), *shadowed}
        names |= {name for name in reached if name.rpartition("-")[0] == prefix}
        components[component] = {
            "revisions": [
                {
                    "name": name,
                    "trafficPercent": traffic.get(name, 0),
                    "shadowPercent": shadowed.get(name, 0),
                    "replicas": [_replica(r) for r in backend.replicas(name)],
                }
                for name in sorted(names)
            ]
        }
    return {
        "id": f"{service.namespace}/{service.name}",
        "kind": ISVC_KIND,
        "namespace": service.namespace,
        "name": service.name,
        "ready": _ready(service),
        "components": components,
    }


def _replica(state: ReplicaState) -> dict[str, Any]:
    return {
        "id": state.id,
        "ready": state.ready,
        "pid": state.pid,
        "httpPort": state.http_port,
        "grpcPort": state.grpc_port,
    }
