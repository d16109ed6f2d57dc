"""A monitor with its extensions on a real 127.0.0.1 socket (what `wharf.monitor.app.run` does, without signals),
and payload log events posted to it as the gateway's logger sends them (binary-mode CloudEvents)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson

from wharf.embedded_http import EmbeddedServer, listen
from wharf.logger.events import LogTarget, PayloadEvent
from wharf.monitor.app import Extension, Monitor, create_app
from wharf.monitor.settings import MonitorSettings

T = TypeVar("T")


@asynccontextmanager
async def running_monitor(
    database: Path, extensions: Sequence[Extension] = (), **settings: Any
) -> AsyncIterator[tuple[Monitor, httpx.AsyncClient]]:
    """A monitor over `database` with `extensions`, serving on a free port; a client of it. Stopped as `run` stops
    one: the server, then the extensions' stop hooks, then the store."""
    monitor = Monitor.open(MonitorSettings(database=database, port=0, flush_interval_s=0.01, **settings))
    try:
        routers = [router for extension in extensions for router in extension(monitor)]
        listener = listen("127.0.0.1", 0)
        server = EmbeddedServer(create_app(monitor, routers))
        task = await server.start(listener)
        try:
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield monitor, client
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
    finally:
        for hook in reversed(monitor.on_stop):
            await asyncio.wait_for(hook(), 10)
        await asyncio.to_thread(monitor.store.close)


def v2_rows(rows: np.ndarray, name: str = "input-0") -> bytes:
    """A V2 request of one FP32 tensor [rows, features]."""
    rows = np.asarray(rows, dtype=np.float32)
    tensor = {"name": name, "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
    return orjson.dumps({"inputs": [tensor]})


def v2_classes(model: str, classes: Sequence[int]) -> bytes:
    tensor = {"name": "predict", "shape": [len(classes)], "datatype": "INT64", "data": list(classes)}
    return orjson.dumps({"model_name": model, "outputs": [tensor]})


async def log_exchange(
    client: httpx.AsyncClient, request_id: str, request: bytes, response: bytes, service: str = "iris"
) -> None:
    """Post a request and its response as the payload logger of `service` (namespace default) posts them."""
    target = LogTarget("http://monitor", "all", service, "default", "predictor", f"{service}-predictor-00001", "x")
    for status, body in ((None, request), (200, response)):
        headers, data = PayloadEvent(target, request_id, body, "application/json", {}, status).to_http()
        answer = await client.post("/", headers=headers, content=data)
        assert answer.status_code == 202, answer.text


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """`await probe()` once it answers something truthy (AssertionError naming `what` after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)
