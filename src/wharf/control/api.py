"""The control plane's REST API (FastAPI, documented by OpenAPI at /docs and /openapi.json).

KServe-shaped paths: `/apis/{group}/{version}/namespaces/{namespace}/{plural}[/{name}]`. Errors answer
`{"error": "..."}` like the data plane, never FastAPI's `{"detail": ...}`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from wharf import __version__
from wharf.control.controller import Controller
from wharf.embedded_http import read_body
from wharf.errors import ConfigurationError, WharfError

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 * 2**20  # far more YAML than any set of resources takes
BODY_TIMEOUT_S = 30.0
GROUPS = {"inferenceservices": "serving.kserve.io/v1beta1", "inferencegraphs": "serving.kserve.io/v1alpha1"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(title="Wharf control plane", version=__version__)

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

    @app.post("/apis/apply", summary="Apply one or more YAML or JSON manifests (multi-document, idempotent)")
    async def apply(
        request: Request,
        base: str | None = Query(
            None,
            description="the manifest file's directory (absolute): relative paths in the manifests are read from"
            " there, else from the daemon's working directory",
        ),
    ) -> dict[str, Any]:
        try:
            text = (await read_body(request.receive, MAX_MANIFEST_BYTES, BODY_TIMEOUT_S)).decode()
        except UnicodeDecodeError as e:
            raise ConfigurationError(f"the request body must be UTF-8 YAML or JSON ({e})") from None
        return {"results": await controller.apply(text, None if base is None else Path(base))}

    @app.get("/apis/{group}/{version}/{plural}", summary="List resources in every namespace")
    async def list_all(group: str, version: str, plural: str) -> dict[str, Any]:
        return {"items": controller.list(_kind(group, version, plural))}

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}", summary="List resources in a namespace")
    async def list_namespace(group: str, version: str, namespace: str, plural: str) -> dict[str, Any]:
        return {"items": controller.list(_kind(group, version, plural), namespace)}

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}", summary="One resource with its status")
    async def get(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        return controller.get(_kind(group, version, plural), namespace, name)

    @app.delete("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}", summary="Delete a resource")
    async def delete(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        await controller.delete(_kind(group, version, plural), namespace, name)
        return {}

    @app.post("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}/promote")
    async def promote(namespace: str, name: str) -> dict[str, Any]:
        return await controller.promote(namespace, name)

    @app.post("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}/rollback")
    async def rollback(namespace: str, name: str) -> dict[str, Any]:
        return await controller.rollback(namespace, name)

    return app


def _kind(group: str, version: str, plural: str) -> str:
    if GROUPS.get(plural) != f"{group}/{version}":
        raise HTTPException(404, f"no resource collection {group}/{version}/{plural}")
    return {"inferenceservices": "InferenceService", "inferencegraphs": "InferenceGraph"}[plural]
