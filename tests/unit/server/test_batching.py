"""The batching policy and the worker threads, driven directly (no sockets, no real clock waits beyond a few ms)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from wharf.errors import RequestTimeout, ServerBusy
from wharf.model.base import Model, to_response
from wharf.protocol.v2 import InferRequest, RequestedOutput, Tensor
from wharf.server import batching
from wharf.server.runner import Job, ThreadRunner, one_by_one


def _request(*rows: float, name: str = "x", **parameters) -> InferRequest:  # type: ignore[no-untyped-def]
    return InferRequest([Tensor(name, np.array([[r, r] for r in rows]))], parameters=parameters)


class RowSum(Model):
    """Sums each row; refuses negative numbers."""

    def predict(self, request: InferRequest) -> np.ndarray:
        data = request.inputs[0].data
        if (data < 0).any():
            raise ValueError("negative input")
        return data.sum(axis=1)


def test_rows_and_keys() -> None:
    assert batching.rows(_request(1, 2, 3)) == 3
    ragged = InferRequest([Tensor("a", np.zeros((2, 1))), Tensor("b", np.zeros((3, 1)))])
    assert batching.rows(ragged) is None
    assert batching.batch_key(_request(1)) == batching.batch_key(_request(2, 3))
    assert batching.batch_key(_request(1)) != batching.batch_key(_request(1, name="y"))
    assert batching.batch_key(_request(1, method="a")) != batching.batch_key(_request(1, method="b"))
    with_output = _request(1)
    with_output.outputs = [RequestedOutput("y")]
    assert batching.batch_key(with_output) != batching.batch_key(_request(1))


def test_merge_and_split_round_trip() -> None:
    merged = batching.merge([_request(1), _request(2, 3)])
    assert merged.inputs[0].data[:, 0].tolist() == [1, 2, 3]
    model = RowSum("sum")
    parts = batching.split(to_response(model, model.predict(merged), merged), [1, 2])
    assert parts is not None
    assert [p.outputs[0].data.tolist() for p in parts] == [[2.0], [4.0, 6.0]]


def _data(model: Model, outcomes, jobs: list[Job]) -> list:  # type: ignore[no-untyped-def]
    """Each job's first output as a list, normalised as the data plane does."""
    return [
        to_response(model, result, job.payload).outputs[0].data.tolist() for (result, _), job in zip(outcomes, jobs)
    ]


def _jobs(*requests: InferRequest) -> list[Job]:
    loop = asyncio.new_event_loop()
    try:
        return [Job(r, loop.create_future(), batching.rows(r) or 1, 0.0) for r in requests]
    finally:
        loop.close()


def test_a_bad_request_fails_alone() -> None:
    model = RowSum("sum")
    calls: list[int] = []

    def predict(request: InferRequest) -> np.ndarray:
        calls.append(len(request.inputs[0].data))
        return model.predict(request)

    jobs = _jobs(_request(1), _request(-1), _request(2, 3))
    outcomes = batching.batched(model, predict)(jobs)
    assert isinstance(outcomes[1][1], ValueError)
    del outcomes[1], jobs[1]
    assert _data(model, outcomes, jobs) == [[2.0], [4.0, 6.0]]
    assert calls == [4, 1, 1, 2]  # one merged call, then each alone


def test_incompatible_requests_go_to_separate_batches() -> None:
    model = RowSum("sum")
    calls: list[int] = []

    def predict(request: InferRequest) -> np.ndarray:
        calls.append(len(request.inputs[0].data))
        return model.predict(request)

    jobs = _jobs(_request(1), _request(2, name="y"), _request(3))
    assert _data(model, batching.batched(model, predict)(jobs), jobs) == [[2.0], [4.0], [6.0]]
    assert sorted(calls) == [1, 2]


def test_outputs_that_cannot_be_split_fall_back_to_single_calls() -> None:
    model = RowSum("sum")
    jobs = _jobs(_request(1), _request(2))
    outcomes = batching.batched(model, lambda r: np.array([r.inputs[0].data.sum()]))(jobs)
    assert _data(model, outcomes, jobs) == [[2.0], [4.0]]


@pytest.mark.anyio
async def test_lone_request_is_not_held_back_and_busy_model_collects_a_group() -> None:
    release = threading.Event()
    groups: list[int] = []

    def dispatch(jobs: list[Job]):  # type: ignore[no-untyped-def]
        groups.append(len(jobs))
        release.wait(5)
        return [(job.payload, None) for job in jobs]

    runner = ThreadRunner(dispatch, name="m", max_group_size=8, max_wait_s=30.0)
    first = runner.submit(0)
    await asyncio.sleep(0.05)
    later = [runner.submit(i) for i in range(1, 6)]  # queued while the worker is busy with the first
    release.set()
    assert await asyncio.wait_for(first, 5) == 0
    assert await asyncio.wait_for(asyncio.gather(*later), 5) == [1, 2, 3, 4, 5]
    assert groups == [1, 5]
    assert runner.depth == 0
    runner.close()


@pytest.mark.anyio
async def test_group_size_is_bounded_by_rows() -> None:
    release = threading.Event()
    groups: list[list[int]] = []

    def dispatch(jobs: list[Job]):  # type: ignore[no-untyped-def]
        groups.append([job.size for job in jobs])
        release.wait(5)
        return [(None, None) for _ in jobs]

    runner = ThreadRunner(dispatch, name="m", max_group_size=4)
    futures = [runner.submit(None, 1)]
    await asyncio.sleep(0.05)
    futures += [runner.submit(None, size) for size in (2, 2, 3, 1)]
    release.set()
    await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert groups == [[1], [2, 2], [3, 1]]
    runner.close()


@pytest.mark.anyio
async def test_a_full_queue_is_refused_at_once_and_cancelled_jobs_are_skipped() -> None:
    release = threading.Event()
    ran: list[int] = []

    def work(payload: int) -> int:
        release.wait(5)
        ran.append(payload)
        return payload

    runner = ThreadRunner(one_by_one(work), name="m", max_queue=2)
    first = runner.submit(1)
    second = runner.submit(2)
    with pytest.raises(ServerBusy, match="2 requests queued"):
        runner.submit(3)
    await asyncio.sleep(0.05)
    second.cancel()
    release.set()
    assert await asyncio.wait_for(first, 5) == 1
    await asyncio.sleep(0.05)
    assert ran == [1] and runner.depth == 0
    runner.close()


@pytest.mark.anyio
async def test_requests_past_their_deadline_fail_with_a_timeout_and_are_not_run() -> None:
    release = threading.Event()
    ran: list[int] = []

    def work(payload: int) -> int:
        ran.append(payload)
        release.wait(5)
        return payload

    runner = ThreadRunner(one_by_one(work), name="m", timeout_s=0.2)
    first, second = runner.submit(1), runner.submit(2)
    with pytest.raises(RequestTimeout, match="did not answer within 0.2 s"):
        await asyncio.wait_for(first, 5)
    with pytest.raises(RequestTimeout):
        await asyncio.wait_for(second, 5)
    release.set()
    await asyncio.sleep(0.1)
    assert ran == [1] and runner.depth == 0
    runner.close()
