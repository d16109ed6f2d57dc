"""The metrics API, TrustyAI's paths and bodies, as a FastAPI router for the monitor's app to mount.

For each metric at its path (`/metrics/drift/<name>` or `/metrics/group/fairness/<name>`; SPD and DIR also at
TrustyAI's deprecated `/metrics/spd` and `/metrics/dir`; see `registry`):
- `POST <path>`: compute it now; TrustyAI's answer (`value` or `namedValues`, `thresholds`, `specificDefinition`,
  `name`, `id`, `timestamp`, `type`).
- `POST <path>/request`: schedule it; answers `{"requestId", "timestamp"}`.
- `GET <path>/requests`: its scheduled requests, `{"requests": [{"id", "request", "status"}]}`.
- `DELETE <path>/request` with `{"requestId"}`: unschedule one; answers `Removed` (text, as TrustyAI does).
- `GET <path>/definition`: what the metric measures (text).
And `GET /metrics/all/requests?type=all|fairness|drift`: the scheduled requests of every metric (or of one kind).

A listed request's `status` is Wharf's: the alert state (`outsideBounds`, `since`), when it was last computed, the
latest value(s), the bounds they were judged by (`thresholds`: `lowerBound`, `upperBound`, and for a per-column
metric `namedOutsideBounds`) and the error that kept the latest computation from a result. Bodies are read as JSON
and validated by the metrics, so that a bad body is InvalidInput naming its field; the endpoints raise `wharf.errors`
errors, which the app that mounts the router answers as `{"error": ...}` (`wharf.monitor.api` does). Reading rows
and computing run in worker threads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from wharf.errors import InvalidInput
from wharf.monitor.data import Rows
from wharf.monitor.metrics.registry import METRICS, Metric, compute
from wharf.monitor.metrics.requests import ScheduleId, parse
from wharf.monitor.metrics.results import Result, timestamp
from wharf.monitor.metrics.scheduled import ScheduledRequest, Status
from wharf.monitor.metrics.scheduler import Scheduler


def metrics_router(rows: Rows, scheduler: Scheduler) -> APIRouter:
    """The metrics API over `rows`, scheduling with `scheduler` (which the app starts and stops: see
    `wharf.monitor.metrics.extension`)."""
    router = APIRouter(tags=["metrics"])
    for metric in METRICS.values():
        _add_metric(router, metric, rows, scheduler)

    @router.get("/metrics/all/requests")
    async def all_requests(type: str | None = None) -> dict[str, Any]:  # TrustyAI's query parameter
        return _listing(scheduler.listed(kind=None if type in (None, "all") else type))

    return router


def _add_metric(router: APIRouter, metric: Metric, rows: Rows, scheduler: Scheduler) -> None:
    async def now(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(compute, metric.name, await _json(request), rows)

    async def schedule(request: Request) -> dict[str, Any]:
        scheduled = await run_in_threadpool(scheduler.register, metric.name, await _json(request))
        return {"requestId": str(scheduled.id), "timestamp": _moment(scheduled.registered)}

    async def requests() -> dict[str, Any]:
        return _listing(scheduler.listed(name=metric.name))

    async def unschedule(request: Request) -> PlainTextResponse:
        body = parse(ScheduleId, await _json(request))
        await run_in_threadpool(scheduler.delete, body.requestId, metric.name)
        return PlainTextResponse("Removed")

    async def definition() -> PlainTextResponse:
        return PlainTextResponse(metric.definition)

    for path in metric.paths:
        name = path.removeprefix("/metrics/").replace("/", "_")
        router.add_api_route(path, now, methods=["POST"], name=name)
        router.add_api_route(f"{path}/request", schedule, methods=["POST"], name=f"{name}_schedule")
        router.add_api_route(f"{path}/requests", requests, methods=["GET"], name=f"{name}_requests")
        router.add_api_route(f"{path}/request", unschedule, methods=["DELETE"], name=f"{name}_unschedule")
        router.add_api_route(f"{path}/definition", definition, methods=["GET"], name=f"{name}_definition")


async def _json(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body: not JSON ({error})") from None


def _listing(entries: list[tuple[ScheduledRequest, Status]]) -> dict[str, Any]:
    return {"requests": [_listed(scheduled, status) for scheduled, status in entries]}


def _listed(scheduled: ScheduledRequest, status: Status) -> dict[str, Any]:
    result = status.result
    return {
        "id": str(scheduled.id),
        "request": scheduled.request.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": {
            "outsideBounds": None if status.alert.since is None else status.alert.outside_bounds,
            "since": _moment(status.alert.since),
            "computedAt": _moment(status.computed_at),
            "value": None if result is None else result.value,
            "namedValues": None if result is None or result.named_values is None else dict(result.named_values),
            "thresholds": None if result is None else _thresholds(result),
            "error": status.error,
        },
    }


def _thresholds(result: Result) -> dict[str, Any]:
    """The latest result's bounds, and for a per-column metric each column's verdict (the console draws them)."""
    named = result.named_outside_bounds
    return {
        "lowerBound": result.bounds.lower,
        "upperBound": result.bounds.upper,
        "namedOutsideBounds": None if named is None else dict(named),
    }


def _moment(seconds: float | None) -> str | None:
    return None if seconds is None else timestamp(datetime.fromtimestamp(seconds, UTC))
