"""The CPU cost of a cache hit against a single-model server's request, in one process: bench/mms.py's hit path
without sockets, measured where a shared machine disturbs it least.

    .venv/bin/python bench/diagnosis/mms_cpu.py [--models 1000] [--requests 2000] [--pairs 12] [--spread zipf]
        [--flush-s 0.25] [--eager]

One process holds model `s` (served as `wharf serve model.joblib` serves its model: loaded at start, worker threads
of its own) and `--models` catalogue models (bench/mms.py's iris models, registered through the repository load API
and each loaded by its first request, as a replica loads them; with `--eager`, loaded as they are registered, as
bench/mms.py's all-hits replica loads them). Requests go through the real REST application
(`RestApp` called as ASGI, the data plane, the metrics), 64 at a time, 1-row V2 JSON bodies. Rounds of `--requests`
alternate: `single` (every request for `s`) and `hits` (each request's model drawn from a Zipf distribution with
exponent 1.1 over the catalogue, or `--spread uniform`); each round's figure is the process's CPU time (all its
threads) per request, and each pair's is the hits/single ratio, so that load from outside moves both alike.
Without sockets a round answers about four times as many requests a second as a server on one core does, so the
metrics' once-a-second publishing is scaled to a server's rate (`--flush-s`, default 0.25 s).

Printed: min and median us/request of each kind, the ratio of the mins, the median ratio of the pairs, and each
kind's CPU per request on the event loop's thread and on the worker threads (from /proc/self/task, 10 ms ticks).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mms import write_models  # noqa: E402  (the same models as bench/mms.py)

from wharf.model.repository import ModelRepository, source_factory  # noqa: E402
from wharf.server import metrics as server_metrics  # noqa: E402
from wharf.server.dataplane import DataPlane, settle_heap  # noqa: E402
from wharf.server.metrics import ServerMetrics  # noqa: E402
from wharf.server.rest import RestApp  # noqa: E402
from wharf.server.settings import ServerSettings  # noqa: E402

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
CONCURRENCY = 64


def spread_paths(count: int, models: int, seed: int, spread: str) -> list[str]:
    rng = random.Random(seed)
    if spread == "uniform":
        drawn = [rng.randrange(models) for _ in range(count)]
    else:
        drawn = rng.choices(range(models), [1 / (k + 1) ** 1.1 for k in range(models)], k=count)
    return [f"/v2/models/m{i}/infer" for i in drawn]


def thread_ticks() -> dict[str, int]:
    """utime + stime (clock ticks) of the event loop's thread (the main one) and of the others."""
    ticks = {"loop": 0, "workers": 0}
    for task in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{task}/stat").read_text()
        except OSError:  # a thread that just ended
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks["loop" if int(task) == os.getpid() else "workers"] += int(fields[11]) + int(fields[12])
    return ticks


async def measure(args: argparse.Namespace, root: Path) -> None:
    settings = ServerSettings(_env_file=None)
    metrics = ServerMetrics()
    repository = ModelRepository()
    metrics.watch_repository(repository.memory)
    repository.add_factory("s", None, source_factory(str(root / "m0" / "model.joblib"), "s", None, Path))
    await repository.load_all()
    dataplane = DataPlane(repository, settings, metrics)
    app = RestApp(dataplane, metrics, settings.max_request_bytes, settings.body_timeout_s)
    for i in range(args.models):
        parameters = {"storage_uri": str(root / f"m{i}"), "model_format": "sklearn", "lazy": not args.eager}
        await dataplane.load(f"m{i}", parameters)
    settle_heap()
    dataplane.started = True
    failed: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            failed.append(message["status"])

    async def client(paths: list[str]) -> None:
        for path in paths:
            await app({"type": "http", "method": "POST", "path": path, "headers": HEADERS}, receive, send)

    async def run(paths: list[str]) -> None:
        await asyncio.gather(*(client(paths[i::CONCURRENCY]) for i in range(CONCURRENCY)))

    await run([f"/v2/models/m{i}/infer" for i in range(args.models)])  # each model's first request (its load)
    single = ["/v2/models/s/infer"] * args.requests
    await run(single)
    await run(spread_paths(args.requests, args.models, 1, args.spread))
    if args.freeze:
        gc.freeze()
    tracked = len(gc.get_objects())
    figures: dict[str, list[float]] = {"single": [], "hits": []}
    ticks = {kind: {"loop": 0, "workers": 0} for kind in figures}
    for pair in range(args.pairs):
        for kind in ("single", "hits") if pair % 2 == 0 else ("hits", "single"):
            paths = single if kind == "single" else spread_paths(args.requests, args.models, 100 + pair, args.spread)
            before, cpu = thread_ticks(), time.process_time()
            await run(paths)
            figures[kind].append((time.process_time() - cpu) / args.requests * 1e6)
            for thread, count in thread_ticks().items():
                ticks[kind][thread] += count - before[thread]
    app.close()
    dataplane.close()
    if failed:
        raise SystemExit(f"{len(failed)} requests failed, e.g. {failed[:5]}")
    single_us, hits_us = figures["single"], figures["hits"]
    ratios = [h / s for s, h in zip(single_us, hits_us)]
    print(
        f"CPU us/request: single min {min(single_us):.1f} median {statistics.median(single_us):.1f}; "
        f"hits ({args.spread} over {args.models}) min {min(hits_us):.1f} median {statistics.median(hits_us):.1f}; "
        f"hits/single: of the mins {min(hits_us) / min(single_us):.3f}, median of the pairs "
        f"{statistics.median(ratios):.3f}"
    )
    print(f"  objects the garbage collector tracks after the warm-up: {tracked}")
    per_request = 1e6 / os.sysconf("SC_CLK_TCK") / (args.pairs * args.requests)
    for kind, counted in ticks.items():
        print(f"  {kind}: " + ", ".join(f"{thread} {count * per_request:.1f}" for thread, count in counted.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--pairs", type=int, default=12, help="pairs of rounds (single, hits)")
    parser.add_argument("--spread", choices=("zipf", "uniform"), default="zipf")
    parser.add_argument("--flush-s", type=float, default=0.25, help="the metrics' publishing period")
    parser.add_argument("--eager", action="store_true", help="load at registration (bench/mms.py's hits replica)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the warm-up")
    args = parser.parse_args()
    server_metrics._FLUSH_S = args.flush_s
    with tempfile.TemporaryDirectory(prefix="wharf-mms-cpu-") as directory:
        root = Path(directory)
        write_models(root, args.models)
        uvloop.run(measure(args, root))


if __name__ == "__main__":
    main()
