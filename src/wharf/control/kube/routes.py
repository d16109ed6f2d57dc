"""The control API's routes of Kubernetes discovery and OpenAPI (`discovery`, `openapi`), for kubectl and
client-go: `kube_router()` is handed to `create_app` beside the other routers. Behind the control API's token, as
a Kubernetes API server keeps discovery behind its authentication.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from wharf.control.kube import discovery, openapi, openapi_v2
from wharf.errors import NotFound

JSON = "application/json"


def _json(document: object, media_type: str = JSON) -> Response:
    return Response(orjson.dumps(document), media_type=media_type, headers={"vary": "Accept"})


def _discovery(request: Request, groups: tuple[str, ...], legacy: object) -> Response:
    """The aggregated document of `groups` when the client asks for one first, else the legacy one."""
    media_type = discovery.aggregated_media_type(request.headers.get("accept", ""))
    if media_type is None:
        return _json(legacy)
    return _json(discovery.aggregated(groups, media_type), media_type)


def kube_router() -> APIRouter:
    """The routes of this module's docstring."""
    router = APIRouter(tags=["kubernetes"])
    named_groups = tuple(g for g in discovery.VERSIONS if g)

    @router.get("/version", summary="Kubernetes' version info: the release whose API conventions Wharf follows")
    async def version() -> Response:
        return _json(discovery.version_info())

    @router.get("/api", summary="Discovery of Kubernetes' core group (APIVersions, or aggregated discovery)")
    async def core(request: Request) -> Response:
        return _discovery(request, ("",), discovery.api_versions())

    @router.get("/apis", summary="Discovery of the named groups (APIGroupList, or aggregated discovery)")
    async def groups(request: Request) -> Response:
        return _discovery(request, named_groups, discovery.api_group_list())

    @router.get("/api/v1", summary="The core group's resources Wharf serves (APIResourceList)")
    async def core_resources() -> Response:
        return _json(discovery.api_resource_list("", "v1"))

    @router.get("/apis/{group}", summary="One group's versions (APIGroup)")
    async def group(group: str) -> Response:
        found = discovery.api_group(group)
        if found is None:
            raise NotFound(f"the server could not find the requested resource: API group {group!r}")
        return _json(found)

    @router.get("/apis/{group}/{version}", summary="One group version's resources (APIResourceList)")
    async def resources(group: str, version: str) -> Response:
        found = discovery.api_resource_list(group, version)
        if found is None:
            raise NotFound(f"the server could not find the requested resource: API version {group}/{version}")
        return _json(found)

    @router.get(openapi.INDEX_PATH, summary="The OpenAPI v3 index: one document per group version")
    async def openapi_index() -> Response:
        return _json(openapi.index())

    @router.get(openapi.INDEX_PATH + "/apis/{group}/{version}", summary="One group version's OpenAPI v3 document")
    async def openapi_document(group: str, version: str, request: Request) -> Response:
        path = f"apis/{group}/{version}"
        document = openapi.DOCUMENTS.get(path)
        if document is None:
            raise NotFound(f"no OpenAPI document for {group}/{version}")
        fresh = request.query_params.get("hash") == openapi.HASHES[path]
        cache = "public, immutable, max-age=31536000" if fresh else "no-cache, private"
        return Response(
            document, media_type=JSON, headers={"cache-control": cache, "etag": f'"{openapi.HASHES[path]}"'}
        )

    @router.get(
        openapi_v2.PATH, summary="OpenAPI v2 of the same kinds (protobuf when asked for): kubectl validates with it"
    )
    async def openapi_v2_document(request: Request) -> Response:
        if openapi_v2.MEDIA_TYPE in request.headers.get("accept", ""):
            return Response(
                openapi_v2.PROTOBUF_DOCUMENT, media_type=openapi_v2.CONTENT_TYPE, headers={"vary": "Accept"}
            )
        return Response(openapi_v2.JSON_DOCUMENT, media_type=JSON, headers={"vary": "Accept"})

    return router
