"""Which service, revision and replica a request goes to.

A `Router` is compiled from one `RouteTable` and never changes; the gateway builds a new one for every table.
Everything here is pure: randomness comes from the `random.Random` handed in, so tests can fix the outcome.
"""

from __future__ import annotations

import random
from collections.abc import Container, Mapping
from dataclasses import dataclass

from wharf.errors import InvalidInput, NotFound
from wharf.gateway.routes import Graph, Replica, Revision, RouteTable, Service

PATH_PREFIX = "/serving/"
_EXPLAIN_ENDINGS = (":explain", "/explain")  # V1's verb, V2's explain extension


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: its service, the revision its host names (tag routes), and the path to forward."""

    service: Service
    tag_revision: str | None
    path: str


class Router:
    """Resolves hosts, paths, service names and model names against one validated route table."""

    def __init__(self, table: RouteTable, rng: random.Random) -> None:
        validate(table)
        self.table = table
        self._rng = rng
        self._domain_suffix = f".{table.domain}".lower()
        self._services: dict[str, Service] = {}
        self._hosts: dict[str, tuple[Service, str | None]] = {}
        self._models: dict[str, list[Service]] = {}
        self._splits: dict[str, tuple[tuple[int, Revision], ...]] = {}
        # Aliases first, then names: a service's own name wins over another's alias of the same spelling.
        for service in table.services:
            for alias in service.aliases:
                self._name(service, alias)
        for service in table.services:
            self._name(service, service.name)
            if service.front:
                self._models.setdefault(service.model, []).append(service)
                for model in _placed_models(service):  # a multi-model service's models are named by gRPC too
                    self._models.setdefault(model, []).append(service)
            total, split = 0, []
            for name, percent in service.traffic:
                if percent:
                    total += percent
                    split.append((total, service.revisions[name]))
            self._splits[service.key] = tuple(split)
        # A service's own host wins over a tag host of the same spelling.
        for service in table.services:
            self._hosts[self._host(service.name, service.namespace)] = (service, None)
        self._graphs = {graph.key: graph for graph in table.graphs}
        self._graph_hosts = {self._host(g.name, g.namespace): g for g in table.graphs}

    def _host(self, name: str, namespace: str) -> str:
        return f"{name}.{namespace}{self._domain_suffix}".lower()

    def _name(self, service: Service, name: str) -> None:
        """`service` answers at `name` in its namespace: key, host and tag hosts."""
        self._services[f"{service.namespace}/{name}"] = service
        host = self._host(name, service.namespace)
        for tag, revision in service.tags.items():
            self._hosts[f"{tag}-{host}"] = (service, revision)
        self._hosts[host] = (service, None)

    def graph(self, host: str, path: str) -> Graph | None:
        """The InferenceGraph a request is for (by `/serving/{namespace}/{name}` path or Host), if any."""
        serving = _serving_key(path)
        if serving is not None:
            graph = self._graphs.get(serving[0])
            if graph is not None:
                return graph
        return self._graph_hosts.get(_hostname(host))

    def route(self, host: str, path: str) -> Route:
        """The route of an HTTP request: by `/serving/{namespace}/{name}/` path prefix, else by Host header; an
        explain request goes to the service's explainer when it has one."""
        serving = _serving_key(path)
        if serving is not None:
            service = self._services.get(serving[0])
            if service is not None:
                return self._explained(Route(service, None, serving[1]))
        found = self._hosts.get(_hostname(host))
        if found is None:
            raise NotFound(f"no InferenceService for host {host!r} and path {path!r}")
        return self._explained(Route(found[0], found[1], path))

    def _explained(self, route: Route) -> Route:
        """`route`, or, for an explain request (`...:explain`, `.../explain`) to a service with an explainer, the
        route to the explainer (whose own revisions answer: a tag of the service pins none of them)."""
        explainer = route.service.explainer
        if explainer is None or not route.path.endswith(_EXPLAIN_ENDINGS):
            return route
        return Route(self.service(explainer), None, route.path)

    def host_route(self, host: str) -> tuple[Service, str | None] | None:
        """The service a gRPC request's `host` names, with the revision of a tag host; None for a host outside the
        domain (an address such as a channel's default `127.0.0.1:8001`: it names no service), NotFound for one
        within it that names none."""
        name = _hostname(host)
        found = self._hosts.get(name)
        if found is not None or not name.endswith(self._domain_suffix):
            return found
        if name in self._graph_hosts:
            raise NotFound(f"{host!r} is an InferenceGraph: graphs answer over REST only")
        raise NotFound(f"no InferenceService for host {host!r}")

    def service(self, key: str) -> Service:
        """The service named `namespace/name`."""
        service = self._services.get(key)
        if service is None:
            raise NotFound(f"no InferenceService {key!r} (expected namespace/name)")
        return service

    def service_of_model(self, model: str) -> Service:
        """The one service whose predictor serves `model`."""
        services = self._models.get(model, ())
        if len(services) == 1:
            return services[0]
        if not services:
            raise NotFound(f"no InferenceService serves model {model!r}")
        names = ", ".join(s.key for s in services)
        raise InvalidInput(
            f"model {model!r} is served by several InferenceServices ({names}); name one by its host"
            f" (host metadata such as {self._host(services[0].name, services[0].namespace)})"
            " or as x-wharf-service: NAMESPACE/NAME"
        )

    def revision(self, service: Service, pinned: str | None = None) -> Revision:
        """The revision `pinned` names, else one drawn by the service's traffic percentages."""
        if pinned is not None:
            revision = service.revisions.get(pinned)
            if revision is None:
                raise NotFound(f"InferenceService {service.key!r} has no revision {pinned!r}")
            return revision
        split = self._splits[service.key]
        if len(split) == 1:
            return split[0][1]
        draw = self._rng.randrange(100)
        for bound, revision in split:
            if draw < bound:
                return revision
        raise AssertionError("traffic percentages were validated to sum to 100")

    def shadow(self, service: Service) -> Revision | None:
        """The shadow revision when this request is one of the share mirrored to it, else None."""
        if service.shadow is None:
            return None
        name, percent = service.shadow
        return service.revisions[name] if self._rng.randrange(100) < percent else None


def _placed_models(service: Service) -> set[str]:
    """The models the placements of `service`'s revisions name (none without a multi-model revision)."""
    return {m for r in service.revisions.values() if r.placement is not None for m in r.placement.replicas}


def _hostname(host: str) -> str:
    """The Host header's name, lower-cased and without its port."""
    return host.rpartition(":")[0].lower() if ":" in host else host.lower()


def _serving_key(path: str) -> tuple[str, str] | None:
    """For a `/serving/{namespace}/{name}/rest` path, `namespace/name` and the path left (`/rest`); else None."""
    if not path.startswith(PATH_PREFIX):
        return None
    namespace, _, rest = path[len(PATH_PREFIX) :].partition("/")
    name, _, rest = rest.partition("/")
    return f"{namespace}/{name}", "/" + rest


def least_loaded(
    replicas: tuple[Replica, ...], in_flight: Mapping[str, int], rng: random.Random, skip: Container[str] = ()
) -> Replica | None:
    """The ready replica (not in `skip`) with the fewest requests in flight, ties broken at random; None if none."""
    ties: list[Replica] = []
    fewest = 0
    for replica in replicas:
        if not replica.ready or replica.id in skip:
            continue
        load = in_flight.get(replica.id, 0)
        if not ties or load < fewest:
            ties, fewest = [replica], load
        elif load == fewest:
            ties.append(replica)
    if len(ties) > 1:
        return ties[rng.randrange(len(ties))]
    return ties[0] if ties else None


def validate(table: RouteTable) -> None:
    """Raise ValueError unless every name in `table` resolves and every split adds up."""
    services = {service.key for service in table.services}
    for graph in table.graphs:
        if graph.key in services:
            raise ValueError(f"InferenceGraph {graph.key!r} has the name of an InferenceService")
    seen_services: set[str] = set()
    seen_revisions: set[str] = set()
    for service in table.services:
        where = f"InferenceService {service.key!r}"
        if service.key in seen_services:
            raise ValueError(f"{where} appears twice")
        seen_services.add(service.key)
        for name, revision in service.revisions.items():
            if name != revision.name:
                raise ValueError(f"{where}: revision {revision.name!r} is filed under {name!r}")
            if name in seen_revisions:
                raise ValueError(f"{where}: revision name {name!r} is used by another service too")
            seen_revisions.add(name)
            if revision.timeout_s <= 0 or revision.container_concurrency < 0:
                raise ValueError(f"{where}: revision {name!r} needs timeout_s > 0 and container_concurrency >= 0")
        named = [("traffic", name) for name, _ in service.traffic] + [("tag", r) for r in service.tags.values()]
        if service.shadow is not None:
            named.append(("shadow", service.shadow[0]))
        for role, name in named:
            if name not in service.revisions:
                raise ValueError(f"{where}: {role} names unknown revision {name!r}")
        percents = [percent for _, percent in service.traffic]
        if service.shadow is not None:
            percents.append(service.shadow[1])
        if any(not 0 <= p <= 100 for p in percents) or sum(p for _, p in service.traffic) != 100:
            raise ValueError(f"{where}: traffic percentages must be 0..100 and sum to 100, got {service.traffic}")
