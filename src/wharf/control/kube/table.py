"""Server-side printing: what `kubectl get isvc` shows, as a `meta.k8s.io/v1` Table the API answers instead of the
objects when the request's `Accept` asks for one (`application/json;as=Table;v=v1;g=meta.k8s.io`, as kubectl asks).

The columns are KServe's (its CRDs' `additionalPrinterColumns`): for an InferenceService NAME, URL, READY, PREV and
LATEST (the predictor's traffic percent of the previously rolled-out and of the latest revision),
PREVROLLEDOUTREVISION, LATESTREADYREVISION (the revisions taking that traffic) and AGE; for an InferenceGraph NAME,
URL, READY and AGE. `kubectl get -o wide` adds Wharf's MESSAGE: why it is not ready. A value the object does not
have is null (kubectl prints `<none>`); AGE is written as kubectl writes durations (`45s`, `3m12s`, `5h`, `2d3h`).

Each row carries the object as `includeObject` asks: its metadata (`Metadata`, the default: kubectl reads names and
labels there), the whole object (`Object`) or nothing (`None`). Costs one pass over each object's status.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.control.spec import batchjob, graph, inferenceservice, kafkasource, trainedmodel
from wharf.errors import InvalidInput
from wharf.export import runtime

GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("None", "Metadata", "Object")

Object = Mapping[str, Any]


def content_type(version: str) -> str:
    """The media type of a Table answer of `version` (v1 or v1beta1)."""
    return f"application/json;as=Table;v={version};g={GROUP}"


def table_version(accept: str) -> str | None:
    """The Table version (`v1` or `v1beta1`) the `Accept` header asks for ahead of plain objects; None when it asks
    for the objects themselves."""
    for offered in accept.split(","):
        kind, *parameters = (part.strip() for part in offered.split(";"))
        params = dict(p.partition("=")[::2] for p in parameters)
        if params.get("as") == "Table" and params.get("g") == GROUP and params.get("v") in TABLE_VERSIONS:
            return params["v"]
        if kind in ("application/json", "*/*", "application/*", "application/yaml") and "as" not in params:
            return None
    return None


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its definition as the Table carries it, and how a row's cell is read from the object."""

    name: str
    type: str
    description: str
    cell: Callable[[Object, float], Any]
    format: str = ""
    priority: int = 0  # 1: shown by `-o wide` only

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _status(item: Object) -> Mapping[str, Any]:
    return item.get("status") or {}


def _ready(item: Object) -> Mapping[str, Any]:
    return next((c for c in _status(item).get("conditions") or [] if c.get("type") == "Ready"), {})


def _traffic(item: Object, latest: bool) -> Mapping[str, Any]:
    """The predictor's traffic entry of its latest revision, or of the previously rolled-out one (tagged `prev`)."""
    traffic = ((_status(item).get("components") or {}).get("predictor") or {}).get("traffic") or []
    found = (t for t in traffic if (t.get("latestRevision") is True if latest else t.get("tag") == "prev"))
    return next(found, {})


def _message(item: Object) -> str | None:
    message = _ready(item).get("message")
    return message.split("\n")[0] if message else None


def human_duration(seconds: float) -> str:
    """A duration as kubectl writes ages: seconds up to 2 minutes, minutes and seconds up to 10, minutes up to 3
    hours, hours and minutes up to 8, hours up to 2 days, days and hours up to 8, days up to 2 years, then years and
    days up to 8 years, then years."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    s = max(s, 0)
    minutes, hours = s // 60, s // 3600
    days, years = hours // 24, hours // (24 * 365)
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _age(item: Object, now: float) -> str | None:
    created = (item.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return None
    try:
        then = calendar.timegm(time.strptime(created.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return human_duration(now - then)


_NAME = Column(
    "Name", "string", "The resource's name, unique within its namespace.", lambda o, _: o["metadata"]["name"], "name"
)
_URL = Column("URL", "string", "Where clients reach it (status.url).", lambda o, _: _status(o).get("url"))
_READY = Column("Ready", "string", "Its Ready condition's status.", lambda o, _: _ready(o).get("status"))
_AGE = Column("Age", "date", "How long ago it was created.", _age)
_MESSAGE = Column("Message", "string", "Why it is not ready.", lambda o, _: _message(o), priority=1)


def _traffic_column(name: str, description: str, latest: bool, field: str, type_: str = "string") -> Column:
    return Column(name, type_, description, lambda o, _: _traffic(o, latest).get(field))


COLUMNS: dict[str, tuple[Column, ...]] = {
    inferenceservice.KIND: (
        _NAME,
        _URL,
        _READY,
        _traffic_column("Prev", "The previously rolled-out revision's traffic percent.", False, "percent", "integer"),
        _traffic_column("Latest", "The latest revision's traffic percent.", True, "percent", "integer"),
        _traffic_column("PrevRolledoutRevision", "The previously rolled-out revision.", False, "revisionName"),
        _traffic_column("LatestReadyRevision", "The latest revision, taking traffic.", True, "revisionName"),
        _AGE,
        _MESSAGE,
    ),
    graph.KIND: (_NAME, _URL, _READY, _AGE, _MESSAGE),
    trainedmodel.KIND: (
        _NAME,
        Column("ISVC", "string", "Its parent InferenceService.", lambda o, _: o["spec"]["inferenceService"]),
        Column("Framework", "string", "Its model format.", lambda o, _: o["spec"]["model"]["framework"]),
        _READY,
        Column(
            "Loaded On",
            "string",
            "The replicas that have it in memory (it is loaded on its first request).",
            lambda o, _: ",".join(_status(o).get("loadedOn") or []) or "-",
        ),
        _URL,
        _AGE,
        _MESSAGE,
    ),
    batchjob.KIND: (
        _NAME,
        Column(
            "Status",
            "string",
            "Its condition that holds: Running, Succeeded or Failed.",
            lambda o, _: next(
                (c.get("type") for c in _status(o).get("conditions", []) if c.get("status") == "True"), None
            ),
        ),
        Column("Rows", "integer", "Rows scored so far.", lambda o, _: _status(o).get("rowsDone")),
        Column("Total", "integer", "Rows in the input, once known.", lambda o, _: _status(o).get("rowsTotal")),
        Column("Errors", "integer", "Bad rows set aside.", lambda o, _: _status(o).get("errors")),
        _AGE,
        _MESSAGE,
    ),
    kafkasource.KIND: (
        _NAME,
        Column("Sink", "string", "Where its messages go.", lambda o, _: kafkasource.sink_label(o.get("spec") or {})),
        Column("Topics", "string", "The topics read.", lambda o, _: ",".join((o.get("spec") or {}).get("topics", []))),
        Column("Members", "integer", "Consumer-group members running.", lambda o, _: _status(o).get("consumers")),
        Column("Lag", "integer", "Messages not yet answered, over all partitions.", lambda o, _: _status(o).get("lag")),
        _READY,
        _AGE,
        _MESSAGE,
    ),
    runtime.KIND: (_NAME, _AGE),  # `wharf export isvc` writes them; Wharf stores none
}


def _row_object(item: Object, include_object: str) -> dict[str, Any] | None:
    if include_object == "Object":
        return dict(item)
    if include_object == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": f"{GROUP}/v1", "metadata": item.get("metadata", {})}
    return None


def table(
    kind: str,
    items: Iterable[Object],
    include_object: str | None = None,
    resource_version: str | None = None,
    version: str = "v1",
    columns: bool = True,
    now: float | None = None,
) -> dict[str, Any]:
    """The Table of `items` (objects of `kind`, as the API shows them) in Table `version`.

    `include_object` is the request's `includeObject` (default `Metadata`); `resource_version` goes in the Table's
    metadata (a list's); `columns` False leaves the column definitions out (a watch's later events: kubectl keeps
    those of the first); `now` (Unix time) is when ages are counted to."""
    include_object = include_object or "Metadata"
    if include_object not in INCLUDE_OBJECT:
        raise InvalidInput(f"includeObject: must be one of {', '.join(INCLUDE_OBJECT)} (given: {include_object!r})")
    if kind not in COLUMNS:
        raise InvalidInput(f"no table for kind {kind!r}")
    when = time.time() if now is None else now
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": [column.cell(item, when) for column in COLUMNS[kind]]}
        if (shown := _row_object(item, include_object)) is not None:
            row["object"] = shown
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"{GROUP}/{version}",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [column.definition() for column in COLUMNS[kind]] if columns else [],
        "rows": rows,
    }
