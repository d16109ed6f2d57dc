"""The control API's routes for the web console (under `/apis/wharf.dev/v1`), beside the KServe-shaped ones it
also reads. Each needs the control API's token, as every route does; `infer` (a POST) needs the admin's.

- `GET /console`: who is asking (`role`: admin or viewer), the gateway's address, whether a model monitor runs,
  and how often and how long the history keeps samples.
- `GET /revisions`: each revision's live figures (`History.live`).
- `GET /history?series=KEY&prefix=P&since=T`: time series by key (`revision/NAME`, `metric/ID`, `detector/ID`) or
  key prefix, from Unix time T on, as columns.
- `GET /namespaces/NS/inferenceservices/NAME/revisions`: the service's spec and every revision of each component,
  secrets hidden (`wharf.control.redaction`), for the console's spec view and revision diff.
- `POST /namespaces/NS/inferenceservices/NAME/infer?protocol=v1|v2&verb=predict|explain`: the body (JSON) sent
  through the gateway to the service, as a client would send it, and the answer as
  `{"status", "latencyMs", "body"}` (an `x-api-key` header is passed on, for a service that asks for one). The
  browser reaches the gateway this way rather than directly: the gateway is another origin, and answering the
  browser there (CORS) would open every service to any page the user visits; here the call is authenticated as
  the console is, and same-origin.
- `GET /monitor/PATH`: the model monitor's read-only answers (`MonitorView`).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Query, Request

from wharf import __version__
from wharf.control.controller import Controller
from wharf.control.history import History
from wharf.control.monitor_view import MonitorView
from wharf.control.plan import ISVC_KIND
from wharf.control.redaction import redacted
from wharf.embedded_http import read_body
from wharf.errors import NotFound, ServerUnreachable

PREFIX = "/apis/wharf.dev/v1"
MAX_INFER_BYTES = 8 * 2**20
BODY_TIMEOUT_S = 30.0
INFER_TIMEOUT_S = 60.0  # room for a service to scale up from zero
_PATHS = {
    ("v1", "predict"): "/v1/models/{model}:predict",
    ("v1", "explain"): "/v1/models/{model}:explain",
    ("v2", "predict"): "/v2/models/{model}/infer",
    ("v2", "explain"): "/v2/models/{model}/explain",
}


def console_router(controller: Controller, history: History, monitor: MonitorView, gateway_url: str) -> APIRouter:
    """The routes of this module's docstring; `gateway_url` is the gateway's address as users reach it."""
    router = APIRouter(prefix=PREFIX, tags=["console"])
    reconciler = controller.reconciler

    @router.get("/console", summary="Who is asking, and what the console can show")
    async def about(request: Request) -> dict[str, Any]:
        return {
            "role": request.scope.get("state", {}).get("role"),
            "version": __version__,
            "gatewayUrl": gateway_url,
            "domain": reconciler.domain,
            "monitor": monitor.url is not None,
            "history": {"intervalS": history.interval_s, "keepS": history.keep_s},
        }

    @router.get("/revisions", summary="Each revision's live traffic and scaling figures")
    async def revisions_now() -> dict[str, Any]:
        return {"items": history.live()}

    @router.get("/history", summary="Time series (the last hour) by key or key prefix, as columns")
    async def series(
        series: list[str] = Query([], description="a series' key: revision/NAME, metric/ID, detector/ID"),
        prefix: list[str] = Query([], description="every series whose key starts so (revision/, metric/, ...)"),
        since: float = Query(0.0, ge=0, description="samples from this Unix time on"),
    ) -> dict[str, Any]:
        return {"series": history.series(series, prefix, since)}

    @router.get(
        "/namespaces/{namespace}/inferenceservices/{name}/revisions",
        summary="The service's spec and each component's revisions, secrets hidden",
    )
    async def revisions(namespace: str, name: str) -> dict[str, Any]:
        resource = controller.get(ISVC_KIND, namespace, name)
        components = {
            component: [
                {
                    "name": record.name,
                    "number": record.number,
                    "created": record.created,
                    "spec": redacted(record.spec),
                }
                for record in controller.store.revisions(namespace, name, component)
            ]
            for component in (resource.get("status", {}).get("components") or {})
        }
        metadata = resource["metadata"]
        shown = {"name": metadata["name"], "namespace": metadata.get("namespace", namespace)}
        if metadata.get("annotations"):
            shown["annotations"] = metadata["annotations"]
        return {"metadata": redacted(shown), "spec": redacted(resource["spec"]), "components": components}

    @router.post(
        "/namespaces/{namespace}/inferenceservices/{name}/infer",
        summary="Send a request (JSON) through the gateway to the service, and show the answer",
    )
    async def infer(
        request: Request,
        namespace: str,
        name: str,
        protocol: str = Query("v1", pattern="^v[12]$", description="v1 (KServe V1) or v2 (Open Inference)"),
        verb: str = Query("predict", pattern="^(predict|explain)$", description="predict, or explain"),
    ) -> dict[str, Any]:
        resource = controller.store.get(ISVC_KIND, namespace, name)
        if resource is None:
            raise NotFound(f"{ISVC_KIND} {namespace}/{name} not found")
        body = await read_body(request.receive, MAX_INFER_BYTES, BODY_TIMEOUT_S)
        model = (resource.status.get("routing") or {}).get("model") or name
        headers = {"host": f"{name}.{namespace}.{reconciler.domain}", "content-type": "application/json"}
        if key := request.headers.get("x-api-key"):
            headers["x-api-key"] = key
        started = time.perf_counter()
        try:  # a client per request: someone clicked a button
            async with httpx.AsyncClient(base_url=reconciler.ingress.http_url, timeout=INFER_TIMEOUT_S) as gateway:
                answer = await gateway.post(_PATHS[protocol, verb].format(model=model), content=body, headers=headers)
        except httpx.HTTPError as e:
            raise ServerUnreachable(f"the gateway did not answer: {type(e).__name__}: {e}") from None
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            shown: Any = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            shown = answer.text
        return {"status": answer.status_code, "latencyMs": round(latency_ms, 2), "body": shown}

    @router.get("/monitor/{path:path}", summary="The model monitor's read-only answers (status, metrics, detectors)")
    async def monitored(path: str, type: str | None = Query(None, pattern="^[a-z]{1,16}$")) -> Any:  # noqa: A002
        return await monitor.get(path, type)

    return router
