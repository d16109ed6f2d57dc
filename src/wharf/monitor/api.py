"""The monitor's data endpoints, in TrustyAI's shapes (FastAPI; the ingestion endpoint `POST /` is apart, in
`wharf.monitor.ingest`). Errors answer `{"error": "..."}`, never FastAPI's `{"detail": ...}`; other routers
mounted here (the metrics) get the same mapping.

- `GET /info`: per model, TrustyAI's service metadata (`data.inputSchema` / `outputSchema`: each column's `type`,
  `name` and `columnIndex`, by its shown name, with the `nameMapping`; `observations`: logged rows;
  `metrics.scheduledMetadata.metricCounts`), and Wharf's `tags` (reference rows per tag), `labelled` and `dropped`
  (rows retention dropped).
- `GET /info/tags`: per model, reference rows per tag.
- `POST /info/names` `{"modelId", "inputMapping": {name: new name}, "outputMapping": {...}}`: show columns by new
  names (each mapping replaces the one before); `DELETE /info/names` with the model's id as the body: undo.
- `GET /info/inference/ids/{model}?type=all|organic`: every logged row's request id and time (a request of n
  rows appears n times, its rows in order).
- `POST /data/upload`: TrustyAI's upload (`wharf.monitor.upload`): reference data by tag, untagged rows as if
  logged, or ground truth (`is_ground_truth`).
- `POST /data/labels` `{"modelId", "requestId", "labels": {output: [true value per row]}}`: ground truth of one
  logged request, without repeating its inputs (Wharf's; TrustyAI's way is the ground-truth upload).
- `GET /metrics` and `GET /q/metrics` (TrustyAI's path): Prometheus text of the monitor's registry.
- `GET /status`: per model, what the control plane shows of it (`wharf.monitor.status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from wharf import __version__
from wharf.embedded_http import read_body
from wharf.errors import InvalidInput, WharfError
from wharf.monitor.payloads import Table, tensor_table
from wharf.monitor.schema import Side
from wharf.monitor.status import monitor_status
from wharf.monitor.store import Exchange, MonitorStore
from wharf.monitor.upload import Upload, decode_upload
from wharf.protocol import v1, v2

if TYPE_CHECKING:
    from wharf.monitor.app import Monitor

log = logging.getLogger("wharf.monitor")

_IN_THREAD_ABOVE = 2**20  # upload bodies larger than this are decoded off the event loop
_ID_TYPES = ("all", "organic")
_TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}  # uploaded inputs equal logged ones (FP32 logged, FP64 uploaded)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_api(monitor: Monitor, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The data endpoints, and `routers` mounted beside them."""
    api = FastAPI(title="Wharf monitor", version=__version__)
    store = monitor.store
    settings = monitor.settings

    @api.exception_handler(WharfError)
    async def wharf_error(_: Request, error: WharfError) -> JSONResponse:
        return _error(error.http_status, error.message)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _error(400, problems)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=error, extra={"path": request.url.path})
        return _error(500, f"internal error: {type(error).__name__}: {error}")

    async def body(request: Request) -> bytes:
        return await read_body(request.receive, settings.max_event_bytes, settings.body_timeout_s)

    @api.get("/healthz", summary="Whether the monitor answers")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/metrics", summary="Prometheus metrics: events, rows, retention, scheduled metrics")
    @api.get("/q/metrics", include_in_schema=False)
    async def metrics() -> Response:
        monitor.ingest.pairing.expire()
        return Response(generate_latest(monitor.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/status", summary="Per model: rows, metrics outside their bounds, detectors' counts (no times)")
    async def status() -> dict[str, Any]:
        return monitor_status(store, monitor.status_parts)

    @api.get("/info", summary="Per model: its columns, names, rows, tags and scheduled metrics (TrustyAI's shape)")
    async def info() -> dict[str, Any]:
        out = {}
        for name, schema in sorted(store.models.items()):
            held = store.held[schema.key]
            counts = monitor.scheduled(name) if monitor.scheduled else {}
            data: dict[str, Any] = {"inputSchema": _schema(schema.inputs, 0), "observations": held.rows}
            data["outputSchema"] = _schema(schema.outputs, len(schema.inputs.names)) if schema.outputs else None
            out[name] = {
                "metrics": {"scheduledMetadata": {"metricCounts": dict(counts)}},
                "data": data,
                "tags": dict(held.tags),
                "labelled": held.labelled,
                "dropped": held.dropped,
            }
        return out

    @api.get("/info/tags", summary="Per model, its reference rows per data tag")
    async def tags() -> dict[str, dict[str, int]]:
        return {name: dict(store.held[schema.key].tags) for name, schema in sorted(store.models.items())}

    @api.post("/info/names", summary="Show a model's columns by new names", response_class=PlainTextResponse)
    async def names(request: Request) -> str:
        doc = v2.loads_object(await body(request))
        model = _model_id(doc)
        mappings = [doc.get(field) or {} for field in ("inputMapping", "outputMapping")]
        for field, mapping in zip(("inputMapping", "outputMapping"), mappings, strict=True):
            if not isinstance(mapping, dict):
                raise InvalidInput(f"'{field}' must be an object of column name -> new name")
        await store.rename(model, *mappings)
        return "Feature and output name mapping successfully applied."

    @api.delete(
        "/info/names", summary="Show a model's columns by their own names again", response_class=PlainTextResponse
    )
    async def forget_names(request: Request) -> str:
        raw = (await body(request)).strip()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = raw.decode("utf-8", "replace")
        model = _model_id(doc) if isinstance(doc, dict) else doc
        if not isinstance(model, str) or not model:
            raise InvalidInput('the body must name the model: its id, or {"modelId": ...}')
        await store.forget_names(model)
        return "Feature and output name mapping successfully cleared."

    @api.get("/info/inference/ids/{model}", summary="The request id and time of every logged row of a model")
    async def inference_ids(model: str, type: str = "all") -> list[dict[str, str]]:  # noqa: A002 (TrustyAI's name)
        if type not in _ID_TYPES:
            raise InvalidInput(f"'type' must be one of {list(_ID_TYPES)}, got {type!r}")
        ids = await asyncio.to_thread(store.request_ids, model)
        return [{"id": request_id, "timestamp": _iso(moment)} for request_id, moment in ids]

    @api.post(
        "/data/upload",
        summary="Upload reference rows, rows as if logged, or ground truth",
        response_class=PlainTextResponse,
    )
    async def upload(request: Request) -> str:
        raw = await body(request)
        upload = await asyncio.to_thread(decode_upload, raw) if len(raw) > _IN_THREAD_ABOVE else decode_upload(raw)
        if upload.ground_truth:
            count = await _ground_truth(store, upload)
            return f"{count} ground truths successfully added to {upload.model}."
        if upload.tag is not None:
            count = await store.add_reference(upload.model, upload.tag, upload.inputs, upload.outputs)
            return f"{count} datapoints successfully added to {upload.model} data, tagged {upload.tag}."
        store.add_exchange(
            Exchange(upload.model, uuid.uuid4().hex, time.time(), 200, "", "", upload.inputs, upload.outputs)
        )
        await store.flush()
        return f"{upload.inputs.rows} datapoints successfully added to {upload.model} data."

    @api.post("/data/labels", summary="Ground truth of one logged request's rows", response_class=PlainTextResponse)
    async def labels(request: Request) -> str:
        doc = v2.loads_object(await body(request))
        model = _model_id(doc)
        request_id = doc.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInput("'requestId' must be the logged request's id (its x-request-id, the events' id)")
        values = doc.get("labels")
        if not isinstance(values, dict) or not values:
            raise InvalidInput("'labels' must be an object: output name -> its true value for each row")
        table = _label_table(values)
        count = await store.add_labels(model, [(request_id, None, table)])
        return f"{count} ground truths successfully added to {model}."

    for router in routers:
        api.include_router(router)
    return api


def _model_id(doc: dict[str, Any]) -> str:
    model = doc.get("modelId")
    if not isinstance(model, str) or not model:
        raise InvalidInput("'modelId' must be the model's name")
    return model


def _schema(side: Side, first_index: int) -> dict[str, Any]:
    """TrustyAI's ReadableSchema of one side."""
    items = {
        shown: {"type": datatype, "name": name, "columnIndex": first_index + i}
        for i, (name, shown, datatype) in enumerate(zip(side.names, side.shown, side.datatypes, strict=True))
    }
    return {"items": items, "nameMapping": side.renames}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _label_table(values: dict[str, Any]) -> Table:
    """The true outputs of a request's rows, read as V1's columnar `inputs` are; named, never positional."""
    table = tensor_table(v1.decode_request(v2.dumps({"inputs": values}), "labels").inputs, "label")
    return replace(table, positional=False)


async def _ground_truth(store: MonitorStore, upload: Upload) -> int:
    """Labels from a ground-truth upload: each execution id's rows, checked against the logged inputs."""
    assert upload.execution_ids is not None and upload.outputs is not None
    schema = store.schema(upload.model)
    _, inputs = schema.inputs.fit(upload.inputs, upload.model)
    positions: dict[str, list[int]] = {}
    for index, request_id in enumerate(upload.execution_ids):
        positions.setdefault(request_id, []).append(index)
    logged = await asyncio.to_thread(store.rows_of, upload.model, positions)
    unknown = [request_id for request_id in positions if request_id not in logged]
    if unknown:
        raise InvalidInput(f"no logged rows of model '{upload.model}' have the execution ids {unknown[:10]}")
    problems = []
    for request_id, indices in positions.items():
        rows = logged[request_id]
        if len(indices) > len(rows):
            problems.append(f"id {request_id}: {len(indices)} rows uploaded, {len(rows)} logged")
            continue
        for column, name, text in zip(inputs, schema.inputs.shown, schema.inputs.texts, strict=True):
            sent, kept = np.asarray(column)[indices], rows[name].to_numpy()[: len(indices)]
            same = (sent == kept).all() if text else np.allclose(sent.astype(float), kept.astype(float), **_TOLERANCE)
            if not same:
                problems.append(f"id {request_id}: input '{name}' is {sent.tolist()}, logged {kept.tolist()}")
    if problems:
        raise InvalidInput("the uploaded inputs are not those logged: " + "; ".join(problems[:10]))
    labels = [(request_id, 0, _rows(upload.outputs, indices)) for request_id, indices in positions.items()]
    return await store.add_labels(upload.model, labels)


def _rows(table: Table, indices: list[int]) -> Table:
    """Some rows of a table."""
    return replace(table, columns=tuple(np.asarray(column)[indices] for column in table.columns), rows=len(indices))
