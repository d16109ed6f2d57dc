"""Route tables for the gateway's unit tests."""

from __future__ import annotations

from wharf.gateway import Replica, Revision, RouteTable, Service
from wharf.gateway.routes import Graph


def replica(id: str, ready: bool = True) -> Replica:
    return Replica(id, f"http://{id}.test:8080", f"{id}.test:8081", ready)


def revision(name: str, *replicas: Replica, timeout_s: float = 5.0, container_concurrency: int = 0) -> Revision:
    return Revision(name, replicas or (replica(f"{name}-r0"),), timeout_s, container_concurrency)


def service(
    name: str = "iris",
    namespace: str = "default",
    traffic: tuple[tuple[str, int], ...] = (("iris-1", 100),),
    tags: dict[str, str] | None = None,
    shadow: tuple[str, int] | None = None,
    model: str | None = None,
    revisions: tuple[Revision, ...] = (),
) -> Service:
    named = {r.name: r for r in revisions}
    for rev, _ in traffic:
        named.setdefault(rev, revision(rev))
    for rev in [*(tags or {}).values(), *([shadow[0]] if shadow else [])]:
        named.setdefault(rev, revision(rev))
    return Service(namespace, name, model or name, traffic, tags or {}, named, shadow)


def table(*services: Service, domain: str = "example.com", graphs: tuple[Graph, ...] = ()) -> RouteTable:
    return RouteTable(services, domain, graphs)
