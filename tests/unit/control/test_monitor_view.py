"""What the console reads of the model monitor: a few read-only answers passed on with secrets hidden, the monitor's
refusals kept, and its metric values and detector counts sampled into the history once an interval. The monitor
here is a small HTTP server on a real socket answering in the monitor's documented shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from wharf.control.history import History
from wharf.control.monitor_view import MonitorView
from wharf.control.redaction import HIDDEN
from wharf.errors import InvalidInput, NotFound, ServerUnreachable

pytestmark = pytest.mark.anyio

REQUESTS = {
    "requests": [
        {
            "id": "m1",
            "request": {"modelId": "iris", "metricName": "MEANSHIFT"},
            "status": {"namedValues": {"a": 0.01, "b": 0.9}},
        },
        {
            "id": "m2",
            "request": {"modelId": "iris", "metricName": "SPD"},
            "status": {"value": -0.2, "namedValues": None},
        },
        {
            "id": "m3",
            "request": {"modelId": "iris", "metricName": "DIR"},
            "status": {"value": None, "namedValues": None},
        },
    ]
}
DETECTORS = {
    "detectors": [
        {
            "id": "d1",
            "type": "outliers",
            "modelId": "iris",
            "replyUrl": "https://sink.example.com/events?token=s3cr3t",
            "counts": {"inspected": 40, "detected": 2},
        }
    ]
}


class Monitor:
    """The monitor's answers, by path; `asked` counts the questions."""

    def __init__(self) -> None:
        self.asked = 0
        self.answers: dict[str, tuple[int, Any]] = {
            "/metrics/all/requests": (200, REQUESTS),
            "/detectors": (200, DETECTORS),
            "/status": (200, {"models": {"iris": {"rows": 3, "outsideBounds": []}}}),
            "/detectors/gone": (404, {"error": "no detector gone"}),
            "/info": (500, {"error": "database is locked"}),
        }

    async def answer(self, request: web.Request) -> web.Response:
        self.asked += 1
        status, body = self.answers.get(request.path, (404, {"error": "not found"}))
        if request.query.get("type") == "bias":
            status, body = 400, {"error": "type: must be all, fairness or drift"}
        return web.json_response(body, status=status)


@pytest.fixture
async def monitor() -> AsyncIterator[tuple[Monitor, str]]:
    served = Monitor()
    app = web.Application()
    app.router.add_get("/{path:.*}", served.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield served, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_answers_are_passed_on_with_secrets_hidden_and_refusals_kept(monitor: tuple[Monitor, str]) -> None:
    _, url = monitor
    view = MonitorView(url, History())
    try:
        assert (await view.get("status"))["models"]["iris"]["rows"] == 3
        [detector] = (await view.get("detectors"))["detectors"]
        assert detector["replyUrl"].startswith(f"https://sink.example.com/events?{HIDDEN}")
        with pytest.raises(NotFound, match="no detector gone"):
            await view.get("detectors/gone")
        with pytest.raises(InvalidInput, match="type: must be"):
            await view.get("metrics/all/requests", "bias")
        with pytest.raises(ServerUnreachable, match="500: database is locked"):
            await view.get("info")
        for refused in ("data/upload", "metrics/drift/meanshift", "../status", "detectors/a/b"):
            with pytest.raises(NotFound, match="reads only"):
                await view.get(refused)
    finally:
        await view.close()


async def test_values_and_counts_are_sampled_once_an_interval(monitor: tuple[Monitor, str]) -> None:
    served, url = monitor
    history = History(interval_s=10.0)
    view = MonitorView(url, history)
    try:
        await view.sample(1000.0)
        asked = served.asked
        await view.sample(1005.0)  # within the interval: nothing asked
        assert served.asked == asked
        await view.sample(1010.0)
        series = history.series(prefixes=["metric/", "detector/"])
        assert series["metric/m1"] == {"t": [1000.0, 1010.0], "a": [0.01, 0.01], "b": [0.9, 0.9]}
        assert series["metric/m2"] == {"t": [1000.0, 1010.0], "value": [-0.2, -0.2]}
        assert "metric/m3" not in series  # not computed yet: nothing to draw
        assert series["detector/d1"] == {"t": [1000.0, 1010.0], "inspected": [40.0, 40.0], "detected": [2.0, 2.0]}
    finally:
        await view.close()


async def test_no_monitor_or_one_that_does_not_answer_is_said_and_not_sampled() -> None:
    history = History()
    for url in (None, "http://127.0.0.1:1"):  # nothing listens on port 1
        view = MonitorView(url, history)
        try:
            with pytest.raises(ServerUnreachable):
                await view.get("status")
            await view.sample(1000.0)  # logged, retried at the next interval
        finally:
            await view.close()
    assert history.series(prefixes=[""]) == {}
