"""CPU per request of Wharf's REST application alone, without sockets or HTTP parsing: the real `RestApp`, data plane,
worker threads and iris model, driven by N concurrent ASGI calls with an in-memory receive and send, on uvloop.
What it prints is what Wharf's own request path costs above the HTTP stack, for A/B of changes to it on a shared
machine (CPU time, not wall time). Compare with the bare ASGI floor's app, which is an orjson parse and two sends.

    python bench/diagnosis/rest_app_cpu.py MODEL_FILE [REQUESTS] [CONCURRENCY] [MAX_BATCH_SIZE]
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import uvloop

from wharf.model.repository import ModelRepository
from wharf.model.runtimes.sklearn import SKLearnModel
from wharf.server.dataplane import DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.server.rest import RestApp
from wharf.server.settings import ServerSettings

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v2/models/iris/infer",
    "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"89")],
}
MESSAGE = {"type": "http.request", "body": BODY, "more_body": False}


async def receive() -> dict:
    return MESSAGE


async def main(path: str, requests: int, concurrency: int, batch: int) -> None:
    repository = ModelRepository()
    repository.add(SKLearnModel("iris", Path(path)))
    await repository.load_all()
    metrics = ServerMetrics()
    settings = ServerSettings(max_batch_size=batch)
    dataplane = DataPlane(repository, settings, metrics)
    app = RestApp(dataplane, metrics, settings.max_request_bytes, settings.body_timeout_s)
    statuses = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def client(n: int) -> None:
        for _ in range(n):
            await app(dict(SCOPE), receive, send)

    await asyncio.gather(*(client(200 // concurrency + 1) for _ in range(concurrency)))  # warm-up
    statuses.clear()
    main_thread = time.thread_time()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(requests // concurrency) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    main_thread = time.thread_time() - main_thread
    done = len(statuses)
    assert set(statuses) == {200}, set(statuses)
    print(
        f"{done} requests: {1e6 * cpu / done:.1f} CPU us/request ({1e6 * main_thread / done:.1f} on the event loop), "
        f"{done / wall:,.0f} requests/s, {threading.active_count()} threads"
    )
    app.close()
    dataplane.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    uvloop.run(
        main(
            args[0],
            *(int(a) for a in args[1:2] or [20000]),
            *(int(a) for a in args[2:3] or [64]),
            *(int(a) for a in args[3:4] or [1]),
        )
    )
