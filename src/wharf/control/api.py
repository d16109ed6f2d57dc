"""The control plane's REST API (FastAPI, documented by OpenAPI at /docs and /openapi.json).

KServe-shaped paths: `/apis/{group}/{version}/namespaces/{namespace}/{plural}[/{name}]`. Errors answer
`{"error": "..."}` like the data plane, never FastAPI's `{"detail": ...}`.

As Kubernetes' API does, a list takes `fieldSelector=metadata.name=NAME` (and `metadata.namespace`), and with
`watch=true` streams one JSON object per line, `{"type": "ADDED|MODIFIED|DELETED", "object": {...}}`: every
resource there, then each change (with `allowWatchBookmarks=true`, a `BOOKMARK` whose annotation
`k8s.io/initial-events-end` marks the end of the first ones). A resource's `events` are its recent events; an
InferenceService's `log` streams its replicas' logs as text (`component`, `revision`, `replica`, `tailLines`,
`follow`), as a pod's `log` does.

`/metrics` is the control plane's Prometheus text; `/prometheus/targets` (with `wharf up`) is Prometheus HTTP service
discovery of every process of this Wharf to scrape (`wharf.control.discovery`). `/apis/wharf.dev/v1/servicegraph` is
who calls whom through the gateway, and where each runs (`wharf.control.service_graph`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from wharf import __version__
from wharf.control import discovery, service_graph
from wharf.control.controller import Controller
from wharf.control.usage import UsageRecorder
from wharf.embedded_http import read_body
from wharf.errors import ConfigurationError, InvalidInput, ServerBusy, WharfError

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 * 2**20  # far more YAML than any set of resources takes
BODY_TIMEOUT_S = 30.0
GROUPS = {"inferenceservices": "serving.kserve.io/v1beta1", "inferencegraphs": "serving.kserve.io/v1alpha1"}
WATCH_MEDIA_TYPE = "application/json;stream=watch"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_SELECTABLE = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Watch:
    """A list's watch parameters, named as Kubernetes names them."""

    watch: bool = Query(False, description="stream the resources, then their changes, as JSON lines")
    allowWatchBookmarks: bool = Query(False, description="mark the end of the first ones with a BOOKMARK")  # noqa: N815
    timeoutSeconds: float | None = Query(None, gt=0, description="end the watch after this")  # noqa: N815


MAX_STREAMS = 64  # watches and followed logs open at once: each holds a connection for as long as its client likes


class StreamSlots:
    """At most `limit` endless streams (watches, followed logs) at once: more answer 503, so that readers cannot
    take every connection the API has (a viewer's token is enough to open one)."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self.open = 0

    def take(self, lines: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """`lines`, holding a slot while they are read; ServerBusy when none is free."""
        if self.open >= self.limit:
            raise ServerBusy(f"{self.limit} watches and followed logs are open; close one or retry later")

        async def held() -> AsyncIterator[Any]:
            self.open += 1
            try:
                async for line in lines:
                    yield line
            finally:
                self.open -= 1

        return held()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    controller: Controller,
    streams: StreamSlots | None = None,
    targets: discovery.ScrapeTargets | None = None,
    usage: UsageRecorder | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API of `controller`; with `targets`, Prometheus service discovery at `discovery.PATH` too; with `usage`,
    what revisions use now (`/apis/usage/top`) and the cost report (`/apis/usage/cost`); and the routes of
    `routers` (the web console's: `wharf.console.assets`, `wharf.control.console_api`), ahead of the generic
    `/apis/{group}/{version}/...` ones."""
    app = FastAPI(title="Wharf control plane", version=__version__)
    streams = streams or StreamSlots()

    @app.exception_handler(WharfError)
    async def wharf_error(_: Request, error: WharfError) -> JSONResponse:
        return _error(error.http_status, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _error(400, problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=error, extra={"path": request.url.path})
        return _error(500, f"internal error: {type(error).__name__}: {error}")

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/metrics", summary="Prometheus metrics: replicas, panic mode, queued requests, cold starts")
    async def metrics() -> Response:
        return Response(controller.metrics.render(), media_type=controller.metrics.content_type)

    for router in routers:
        app.include_router(router)

    if targets is not None:

        @app.get(discovery.PATH, summary="Prometheus HTTP service discovery: every process of this Wharf to scrape")
        async def prometheus_targets() -> Response:
            return Response(orjson.dumps(targets.http_sd()), media_type="application/json")

    if usage is not None:
        namespace_query = Query(None, description="only this namespace's services (default: every namespace)")
        name_query = Query(None, description="only this InferenceService")

        @app.get("/apis/usage/top", summary="What each revision and its replicas use now: CPU, memory, load")
        async def usage_top(namespace: str | None = namespace_query, name: str | None = name_query) -> dict[str, Any]:
            return {"items": usage.top(namespace, name)}

        @app.get(
            "/apis/usage/cost",
            summary="Cost and utilisation per service and revision over a window, naming over- and under-scaled ones",
        )
        async def usage_cost(
            since: float = Query(3600.0, description="seconds back from now (the minutes that end in them)"),
            namespace: str | None = namespace_query,
            name: str | None = name_query,
        ) -> dict[str, Any]:
            edges = service_graph.graph_edges(controller.store, controller.reconciler.gateway.edges(), namespace)
            return usage.cost(since, namespace, name, edges)

    @app.get(
        service_graph.PATH,
        summary="Which services and graphs call which (requests/s, errors, latency), and where they run",
    )
    async def servicegraph(
        namespace: str | None = Query(None, description="only this namespace's services and graphs (default: all)"),
    ) -> dict[str, Any]:
        reconciler = controller.reconciler
        return service_graph.service_graph(controller.store, reconciler.backend, reconciler.gateway.edges(), namespace)

    @app.post("/apis/apply", summary="Apply one or more YAML or JSON manifests (multi-document, idempotent)")
    async def apply(
        request: Request,
        base: str | None = Query(
            None,
            description="the manifest file's directory (absolute): relative paths in the manifests are read from"
            " there, else from the daemon's working directory",
        ),
        dryRun: str | None = Query(  # noqa: N803 (Kubernetes' name)
            None, pattern="^All$", description="All: check everything and say what would happen, storing nothing"
        ),
    ) -> dict[str, Any]:
        try:
            text = (await read_body(request.receive, MAX_MANIFEST_BYTES, BODY_TIMEOUT_S)).decode()
        except UnicodeDecodeError as e:
            raise ConfigurationError(f"the request body must be UTF-8 YAML or JSON ({e})") from None
        return {"results": await controller.apply(text, None if base is None else Path(base), dryRun == "All")}

    def listed(group: str, version: str, plural: str, namespace: str | None, selector: str | None, watch: Watch) -> Any:
        kind = _kind(group, version, plural)
        fields = _fields(selector)
        if namespace is not None and fields.get("metadata.namespace", namespace) != namespace:
            return {"items": []}
        namespace = namespace or fields.get("metadata.namespace")
        name = fields.get("metadata.name")
        if not watch.watch:
            return {"items": controller.list(kind, namespace, name)}
        changes = controller.watch(kind, namespace, name, watch.timeoutSeconds)
        lines = _watch_lines(changes, kind, f"{group}/{version}", watch.allowWatchBookmarks)
        return StreamingResponse(streams.take(lines), media_type=WATCH_MEDIA_TYPE)

    field_selector = Query(
        None, alias="fieldSelector", description="metadata.name=NAME and/or metadata.namespace=NS, comma-separated"
    )

    @app.get("/apis/{group}/{version}/{plural}", summary="List (or watch) resources in every namespace")
    async def list_all(
        group: str,
        version: str,
        plural: str,
        fieldSelector: str | None = field_selector,  # noqa: N803 (Kubernetes' name)
        watch: Watch = Depends(),
    ) -> Any:
        return listed(group, version, plural, None, fieldSelector, watch)

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}", summary="List (or watch) resources")
    async def list_namespace(
        group: str,
        version: str,
        namespace: str,
        plural: str,
        fieldSelector: str | None = field_selector,  # noqa: N803
        watch: Watch = Depends(),
    ) -> Any:
        return listed(group, version, plural, namespace, fieldSelector, watch)

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}", summary="One resource with its status")
    async def get(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        return controller.get(_kind(group, version, plural), namespace, name)

    @app.delete("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}", summary="Delete a resource")
    async def delete(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        await controller.delete(_kind(group, version, plural), namespace, name)
        return {}

    @app.get(
        "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/events",
        summary="A resource's recent events (the last 100), oldest first",
    )
    async def events(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        return {"items": controller.events_of(_kind(group, version, plural), namespace, name)}

    @app.get(
        "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}/log",
        summary="The logs of a component revision's replicas, as text (WHARF_HOME/logs/REVISION/REPLICA.log)",
        response_class=StreamingResponse,
    )
    async def replica_log(
        namespace: str,
        name: str,
        component: str = Query("predictor", description="predictor or transformer"),
        revision: str | None = Query(None, description="a revision's name or number (default: the latest)"),
        replica: str | None = Query(None, description="one replica (default: every running replica)"),
        tailLines: int | None = Query(None, ge=0, description="the last N lines of each replica"),  # noqa: N803
        follow: bool = Query(False, description="then stream what they write until the client goes"),
    ) -> StreamingResponse:
        source = controller.log_source(namespace, name, component, revision, replica)
        lines = controller.log(source, tailLines, follow)
        return StreamingResponse(streams.take(lines) if follow else lines, media_type="text/plain; charset=utf-8")

    @app.post("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}/promote")
    async def promote(namespace: str, name: str) -> dict[str, Any]:
        return await controller.promote(namespace, name)

    @app.post("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}/rollback")
    async def rollback(namespace: str, name: str) -> dict[str, Any]:
        return await controller.rollback(namespace, name)

    return app


def _fields(selector: str | None) -> dict[str, str]:
    """A field selector's terms (`metadata.name=NAME,metadata.namespace=NS`; `==` as `=`)."""
    fields: dict[str, str] = {}
    for term in filter(None, (selector or "").split(",")):
        field, _, value = term.replace("==", "=").partition("=")
        if field.strip() not in _SELECTABLE or not value:
            raise InvalidInput(
                f"fieldSelector: {term!r} is not supported; select by {' or '.join(f'{f}=VALUE' for f in _SELECTABLE)}"
            )
        fields[field.strip()] = value.strip()
    return fields


async def _watch_lines(
    changes: AsyncIterator[tuple[str, dict[str, Any]]], kind: str, api_version: str, bookmarks: bool
) -> AsyncIterator[bytes]:
    """A watch's changes as JSON lines; the bookmark after the first ones only when the client asked for it."""
    async for type_, resource in changes:
        if type_ == "BOOKMARK":
            if not bookmarks:
                continue
            annotations = {INITIAL_EVENTS_END: "true"}
            resource = {"kind": kind, "apiVersion": api_version, "metadata": {"annotations": annotations}}
        yield orjson.dumps({"type": type_, "object": resource}) + b"\n"


def _kind(group: str, version: str, plural: str) -> str:
    if GROUPS.get(plural) != f"{group}/{version}":
        raise HTTPException(404, f"no resource collection {group}/{version}/{plural}")
    return {"inferenceservices": "InferenceService", "inferencegraphs": "InferenceGraph"}[plural]
