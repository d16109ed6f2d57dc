"""Adaptive batching: compatible requests waiting for a model are merged along the first axis into one call.

Requests are compatible when they have the same inputs (names, datatypes, dimensions after the first), the same
parameters and the same requested outputs. The merged result is split back by each request's row count. When a
merged call fails, or its outputs cannot be split, each request of the batch runs alone, so that one bad request
fails only itself.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from itertools import accumulate
from typing import Any

import numpy as np
import orjson

from wharf.model.base import Model, to_response
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor
from wharf.server.runner import Dispatch, Job, Outcome, one_by_one


def rows(request: InferRequest) -> int | None:
    """The request's batch size: the first dimension all its inputs share (None when they don't)."""
    inputs = request.inputs
    if len(inputs) == 1:  # (most requests: no set to make)
        data = inputs[0].data
        return (data.shape[0] or None) if data.ndim else None
    sizes = {t.data.shape[0] if t.data.ndim else None for t in inputs}
    size = sizes.pop() if len(sizes) == 1 else None
    return size if size else None


def batch_key(request: InferRequest) -> Hashable:
    inputs = tuple([(t.name, t.datatype, t.data.shape[1:]) for t in request.inputs])
    outputs = tuple(o.name for o in request.outputs) if request.outputs is not None else None
    parameters = orjson.dumps(request.parameters, option=orjson.OPT_SORT_KEYS) if request.parameters else b""
    return inputs, outputs, parameters


def merge(requests: list[InferRequest]) -> InferRequest:
    first = requests[0]
    inputs = [
        Tensor(t.name, np.concatenate([r.inputs[i].data for r in requests]), t.datatype, t.parameters)
        for i, t in enumerate(first.inputs)
    ]
    return InferRequest(inputs=inputs, parameters=first.parameters, outputs=first.outputs)


def split(response: InferResponse, sizes: list[int]) -> list[InferResponse] | None:
    """Cut each output at the requests' row boundaries (None when an output does not have one row per input row)."""
    total = sum(sizes)
    if any(t.data.ndim == 0 or t.data.shape[0] != total for t in response.outputs):
        return None
    bounds = list(accumulate(sizes, initial=0))  # Python ints: slicing by numpy integers costs more
    outputs, name, parameters = response.outputs, response.model_name, response.parameters
    return [
        InferResponse(
            name, [Tensor(t.name, t.data[a:b], t.datatype, t.parameters) for t in outputs], None, None, parameters
        )
        for a, b in zip(bounds, bounds[1:])
    ]


def batched(model: Model, fn: Callable[[Any], Any]) -> Dispatch:
    """A dispatch that runs each group of compatible requests as one call of `fn` (the model's steps)."""
    alone = one_by_one(fn)

    def dispatch(jobs: list[Job]) -> list[Outcome]:
        if len(jobs) == 1:
            return alone(jobs)
        groups: dict[Hashable, list[int]] = {}
        for index, job in enumerate(jobs):
            key = batch_key(job.payload) if rows(job.payload) else index  # ragged first dimensions run alone
            groups.setdefault(key, []).append(index)
        outcomes: list[Outcome] = [(None, None)] * len(jobs)
        for indices in groups.values():
            members = [jobs[i] for i in indices]
            for i, outcome in zip(indices, _run_group(members)):
                outcomes[i] = outcome
        return outcomes

    def _run_group(members: list[Job]) -> list[Outcome]:
        if len(members) > 1:
            requests = [job.payload for job in members]
            try:
                merged = merge(requests)
                parts = split(to_response(model, fn(merged), merged), [job.size for job in members])
            except Exception:  # find out which request is to blame by running each alone
                parts = None
            if parts is not None:
                return [(part, None) for part in parts]
        return alone(members)

    return dispatch
