"""Merging consecutive requests of a partition into one infer call, and splitting its answer back per request.

Requests merge when they have the same signature (`signature`): V2 requests whose inputs have the same names,
datatypes, shapes past the first dimension and the same `parameters` and `outputs`; V1 requests that hold only
`instances`. The merged V2 request concatenates each input's rows (its data, flat or nested, in order) and sums the
first dimensions; the merged V1 request concatenates the instances. The answer splits back by each request's rows:
every V2 output must have as many rows as the merged request (its data a whole number of items per row), a V1
answer as many predictions as instances; otherwise `Unsplittable`, and the caller sends the requests one by one.
A request with no signature (anything else in its body, binary data, a shape without rows) is always sent alone.

Pure functions on decoded JSON; cost per request: a tuple of its inputs' names and shapes, and a list extend of its
data.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from wharf.eventing.messages import Request

_V2_KEYS = frozenset({"inputs", "id", "parameters", "outputs"})


class Unsplittable(Exception):
    """A merged call's answer cannot be split back per request; the message says why."""


def signature(request: Request) -> Hashable | None:
    """What requests must share to merge; None for a request that is sent alone."""
    body = request.body
    if request.kind == "v1":
        instances = body.get("instances")
        return "v1" if len(body) == 1 and isinstance(instances, list) and instances else None
    if not body.keys() <= _V2_KEYS:
        return None
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    parts: list[Any] = []
    for item in inputs:
        if not isinstance(item, dict) or item.keys() - {"name", "shape", "datatype", "data"}:
            return None  # binary data or tensor parameters: alone
        shape, data = item.get("shape"), item.get("data")
        if not isinstance(shape, list) or not shape or type(shape[0]) is not int or shape[0] < 1:
            return None
        if not isinstance(data, list):
            return None
        parts.append((item.get("name"), item.get("datatype"), tuple(shape[1:])))
    extra = {k: body[k] for k in ("parameters", "outputs") if k in body}
    return ("v2", tuple(parts), orjson.dumps(extra, option=orjson.OPT_SORT_KEYS) if extra else b"")


def rows(request: Request) -> int:
    """How many rows a request with a signature holds."""
    if request.kind == "v1":
        return len(request.body["instances"])
    return request.body["inputs"][0]["shape"][0]


def merge(requests: Sequence[Request]) -> dict[str, Any]:
    """One request body holding the rows of `requests`, which share a signature (in order)."""
    first = requests[0].body
    if len(requests) == 1:
        return first
    if requests[0].kind == "v1":
        return {"instances": [row for r in requests for row in r.body["instances"]]}
    inputs = []
    for i, item in enumerate(first["inputs"]):
        data: list[Any] = []
        total = 0
        for r in requests:
            part = r.body["inputs"][i]
            data.extend(part["data"])
            total += part["shape"][0]
        inputs.append({**item, "shape": [total, *item["shape"][1:]], "data": data})
    merged = {"inputs": inputs}
    merged.update((k, first[k]) for k in ("parameters", "outputs") if k in first)
    return merged


def split(requests: Sequence[Request], answer: Any) -> list[dict[str, Any]]:
    """The answer of each of `requests` from the answer to `merge(requests)`."""
    if not isinstance(answer, dict):
        raise Unsplittable("the answer is not a JSON object")
    counts = [rows(r) for r in requests]
    total = sum(counts)
    if requests[0].kind == "v1":
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != total:
            raise Unsplittable(f"the answer does not hold {total} predictions")
        bounds = _bounds(counts, 1)
        return [{**answer, "predictions": predictions[a:b]} for a, b in bounds]
    outputs = answer.get("outputs")
    if not isinstance(outputs, list):
        raise Unsplittable("the answer has no outputs")
    sliced: list[list[dict[str, Any]]] = [[] for _ in requests]
    for output in outputs:
        shape, data = output.get("shape") if isinstance(output, dict) else None, None
        if isinstance(shape, list) and shape and shape[0] == total and isinstance(output.get("data"), list):
            data = output["data"]
        if data is None or len(data) % total:
            raise Unsplittable(f"an output does not have {total} rows")
        per_row = len(data) // total
        for i, ((a, b), n) in enumerate(zip(_bounds(counts, per_row), counts, strict=True)):
            sliced[i].append({**output, "shape": [n, *shape[1:]], "data": data[a:b]})
    return [{**answer, "id": r.id, "outputs": outs} for r, outs in zip(requests, sliced, strict=True)]


def _bounds(counts: Sequence[int], per_row: int) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for n in counts:
        bounds.append((start, start + n * per_row))
        start += n * per_row
    return bounds
