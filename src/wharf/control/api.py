"""The control plane's REST API (FastAPI, documented by OpenAPI at /docs and /openapi.json).

The resources are Kubernetes' API (`wharf.control.kube`): `/apis/{group}/{version}/namespaces/{namespace}/{plural}`
lists (`labelSelector`, `fieldSelector`), watches (`watch=true`, `resourceVersion`, `allowWatchBookmarks`,
`timeoutSeconds`: one JSON object per line, `{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}`)
and creates (POST); `.../{name}` gets, replaces (PUT), patches (PATCH: merge, JSON patch, server-side apply) and
deletes; `.../{name}/status` is the status subresource; `/apis/{group}/{version}/{plural}` lists and watches every
namespace, and `/api/v1/namespaces` names the namespaces. Their errors are Kubernetes `Status` objects
(`kube.status`); Wharf's other routes answer `{"error": "..."}` like the data plane, never FastAPI's
`{"detail": ...}`. `POST /apis/apply` is Wharf's own apply of YAML documents (`wharf apply`), through the same
controller and store. A resource's `events` are its recent events; an InferenceService's `log` streams its replicas'
logs as text (`component`, `revision`, `replica`, `tailLines`, `follow`), as a pod's `log` does.

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
from wharf.control.kube import objects, patch, resources
from wharf.control.kube import status as kube_status
from wharf.control.kube.selectors import selector
from wharf.control.kube.status import StatusError
from wharf.control.usage import UsageRecorder
from wharf.embedded_http import read_body
from wharf.errors import ConfigurationError, ServerBusy, WharfError

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 * 2**20  # far more YAML than any set of resources takes
BODY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ListQuery:
    """A list's parameters, named as Kubernetes names them (`limit` and `continue` are taken, and everything is
    answered at once)."""

    labelSelector: str | None = Query(None, description="e.g. app=iris,tier in (a,b),!canary")  # noqa: N815
    fieldSelector: str | None = Query(  # noqa: N815
        None, description="metadata.name=NAME and/or metadata.namespace=NS (or !=), comma-separated"
    )
    watch: bool = Query(False, description="stream the resources, then their changes, as JSON lines")
    resourceVersion: str | None = Query(  # noqa: N815
        None, description="with watch: the changes after this version (a list's), without: everything there, then"
    )
    allowWatchBookmarks: bool = Query(False, description="send BOOKMARKs (the first one after what is there)")  # noqa: N815
    timeoutSeconds: float | None = Query(None, ge=0, description="end the watch after this")  # noqa: N815
    limit: int | None = Query(None, ge=0, description="taken; every item is answered at once")
    resourceVersionMatch: str | None = Query(None, description="taken; a list is always the latest")  # noqa: N815
    sendInitialEvents: bool | None = Query(  # noqa: N815
        None, description="with watch: what is there first (with resourceVersion unset: the default)"
    )


@dataclass(frozen=True)
class WriteQuery:
    """A write's parameters (`fieldValidation` is taken: Wharf refuses unknown fields whatever it says)."""

    fieldManager: str | None = Query(None, description="who makes the change (metadata.managedFields)")  # noqa: N815
    dryRun: str | None = Query(None, description="All: check everything, store nothing")  # noqa: N815
    fieldValidation: str | None = Query(  # noqa: N815
        None, pattern="^(Strict|Warn|Ignore)$", description="taken; unknown fields are always refused"
    )


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


def _error(request: Request, error: WharfError) -> JSONResponse:
    """The one mapping of errors to answers: a Status under the Kubernetes routes, else `{"error": ...}`."""
    if kube_status.is_kube_path(request.url.path):
        return JSONResponse(kube_status.of_error(error), status_code=error.http_status)
    return JSONResponse({"error": error.message}, status_code=error.http_status)


def _json(document: Any, status_code: int = 200, media_type: str = resources.JSON) -> Response:
    return Response(orjson.dumps(document), status_code=status_code, media_type=media_type)


def _printing(request: Request) -> resources.Printing:
    """Objects, or a Table when `Accept` asks for one (`includeObject` says what its rows carry)."""
    return resources.Printing.asked(request.headers.get("accept"), request.query_params.get("includeObject"))


async def _body(request: Request) -> Any:
    """A write's body, decoded by its content type (`kube.patch.decode`)."""
    try:
        body = await read_body(request.receive, MAX_MANIFEST_BYTES, BODY_TIMEOUT_S)
    except WharfError as e:
        raise StatusError(e.http_status, e.message) from None
    return patch.decode(body, request.headers.get("content-type"))


def create_app(
    controller: Controller,
    streams: StreamSlots | None = None,
    targets: discovery.ScrapeTargets | None = None,
    usage: UsageRecorder | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API of `controller`; with `targets`, Prometheus service discovery at `discovery.PATH` too; with `usage`,
    what revisions use now (`/apis/wharf.dev/v1/usage/top`) and the cost report (`/apis/wharf.dev/v1/usage/cost`); and the routes of
    `routers` (the web console's: `wharf.console.assets`, `wharf.control.console_api`), ahead of the generic
    `/apis/{group}/{version}/...` ones."""
    app = FastAPI(title="Wharf control plane", version=__version__)
    streams = streams or StreamSlots()

    @app.exception_handler(WharfError)
    async def wharf_error(request: Request, error: WharfError) -> JSONResponse:
        return _error(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(request, StatusError(error.status_code, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _error(request, StatusError(400, problems))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=error, extra={"path": request.url.path})
        return _error(request, StatusError(500, f"internal error: {type(error).__name__}: {error}"))

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

        @app.get(
            "/apis/wharf.dev/v1/usage/top", summary="What each revision and its replicas use now: CPU, memory, load"
        )
        async def usage_top(namespace: str | None = namespace_query, name: str | None = name_query) -> dict[str, Any]:
            return {"items": usage.top(namespace, name)}

        @app.get(
            "/apis/wharf.dev/v1/usage/cost",
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

    def listed(
        request: Request, group: str, version: str, plural: str, namespace: str | None, query: ListQuery
    ) -> Response:
        served = objects.served(group, version, plural)
        chosen = selector(query.labelSelector, query.fieldSelector)
        printing = _printing(request)
        if not query.watch:
            answer = printing.shown(served, resources.listed(controller, served, namespace, chosen))
            return _json(answer, media_type=printing.media_type)
        version_ = None if query.sendInitialEvents else query.resourceVersion
        lines = resources.watched(
            controller, served, namespace, chosen, version_, query.timeoutSeconds, query.allowWatchBookmarks, printing
        )
        return StreamingResponse(streams.take(lines), media_type=resources.WATCH_MEDIA_TYPE)

    collection = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    one = collection + "/{name}"

    @app.get("/apis/{group}/{version}/{plural}", summary="List (or watch) resources in every namespace")
    async def list_all(
        request: Request, group: str, version: str, plural: str, query: ListQuery = Depends()
    ) -> Response:
        return listed(request, group, version, plural, None, query)

    @app.get(collection, summary="List (or watch) resources")
    async def list_namespace(
        request: Request, group: str, version: str, namespace: str, plural: str, query: ListQuery = Depends()
    ) -> Response:
        return listed(request, group, version, plural, namespace, query)

    @app.post(collection, summary="Create a resource (201; 409 AlreadyExists)", status_code=201)
    async def create(
        request: Request, group: str, version: str, namespace: str, plural: str, query: WriteQuery = Depends()
    ) -> Response:
        served = objects.served(group, version, plural)
        options = _options(request, query, None, False)
        created = await resources.create(controller, served, namespace, await _body(request), options)
        return _json(created, 200 if options.dry_run else 201)

    @app.get(one, summary="One resource with its status")
    async def get(request: Request, group: str, version: str, namespace: str, plural: str, name: str) -> Response:
        served = objects.served(group, version, plural)
        printing = _printing(request)
        shown = printing.shown(served, resources.got(controller, served, namespace, name))
        return _json(shown, media_type=printing.media_type)

    @app.put(one, summary="Replace a resource (its metadata.resourceVersion must be the stored one)")
    async def replace(
        request: Request,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        query: WriteQuery = Depends(),
    ) -> Response:
        served = objects.served(group, version, plural)
        options = _options(request, query, None, False)
        return _json(await resources.replace(controller, served, namespace, name, await _body(request), options))

    @app.patch(
        one,
        summary="Patch a resource: JSON merge patch, JSON patch, or server-side apply (which may create it)",
    )
    async def patch_(
        request: Request,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        query: WriteQuery = Depends(),
        force: bool | None = Query(None, description="an apply takes the fields other managers have"),
    ) -> Response:
        served = objects.served(group, version, plural)
        patch_type = patch.check_patch_type(request.headers.get("content-type"))
        options = _options(request, query, force, patch_type == patch.APPLY)
        body = await _body(request)
        patched, created = await resources.patch(controller, served, namespace, name, patch_type, body, options)
        return _json(patched, 201 if created and not options.dry_run else 200)

    @app.delete(one, summary="Delete a resource (DeleteOptions' preconditions and dryRun honoured)")
    async def delete(
        request: Request,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        dryRun: str | None = Query(None, pattern="^All$", description="All: check, delete nothing"),  # noqa: N803
    ) -> Response:
        served = objects.served(group, version, plural)
        body = await _body(request) if request.headers.get("content-length", "0") != "0" else None
        return _json(await resources.delete(controller, served, namespace, name, body, dryRun == "All"))

    @app.get(one + "/status", summary="A resource's status subresource (the object)")
    async def get_status(group: str, version: str, namespace: str, plural: str, name: str) -> Response:
        return _json(resources.got(controller, objects.served(group, version, plural), namespace, name))

    async def write_status(group: str, version: str, namespace: str, plural: str, name: str) -> Response:
        served = objects.served(group, version, plural)
        resources.got(controller, served, namespace, name)  # 404 first, as for any write
        raise StatusError(405, f"the status of a {served.kind} is written by Wharf's controller only")

    for method in ("PUT", "PATCH"):
        app.add_api_route(
            one + "/status",
            write_status,
            methods=[method],
            operation_id=f"{method.lower()}_status",
            summary="Refused: Wharf's controller writes status",
        )

    @app.get("/api/v1/namespaces", summary="The namespaces: default, and those that hold resources")
    async def namespaces() -> Response:
        return _json(resources.namespace_list(controller))

    @app.get("/api/v1/namespaces/{name}", summary="One namespace")
    async def namespace(name: str) -> Response:
        return _json(resources.namespace(controller, name))

    @app.get(one + "/events", summary="A resource's recent events (the last 100), oldest first")
    async def events(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        return {"items": controller.events_of(objects.served(group, version, plural).kind, namespace, name)}

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


def _options(request: Request, query: WriteQuery, force: bool | None, apply: bool) -> resources.WriteOptions:
    user_agent = request.headers.get("user-agent")
    return resources.write_options(query.fieldManager, user_agent, query.dryRun, force, apply)
