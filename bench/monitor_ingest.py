"""The model monitor's ingestion on one core, and a drift metric and a bias metric over 100,000 stored rows.

    .venv/bin/python bench/monitor_ingest.py [--exchanges 100000] [--connections 64] [--outliers] [--profile FILE]

`wharf monitor` runs pinned to CPU 0 (`taskset -c 0`) on a free port, with a temporary WHARF_HOME and database,
and is stopped by PID at the end. This process drives it from CPU 1 (uvloop): `--connections` keep-alive HTTP/1.1
connections, each posting exchanges one after the other as the gateway's payload logger posts them: a binary-mode
CloudEvent of the request (a 1-row iris V2 JSON request, `input-0` FP32 [1, 4]) and then one of its response
(`predict` INT64 [1]), sharing the exchange's id, with the headers `wharf.logger.events.PayloadEvent.to_http`
makes. The rows are the iris data set's, in turn. The requests are encoded once and written on plain asyncio
connections (`Connection`): aiohttp spent about as much CPU a request as the monitor spends on an event (170 µs),
so the client, not the monitor, was what got measured.

Reported:
- events/s received: events answered 202, over the time from the first post to the last answer (the monitor's
  own count, `wharf_monitor_events_total`, is checked against it), and the monitor's CPU time per event
  (/proc/PID/stat);
- rows/s stored: `wharf_monitor_rows_stored_total` reaching every row, over the time from the first post;
- then, with the iris data set uploaded as reference data (tag TRAINING), the wall time of `POST
  /metrics/drift/kstest` (batchSize 100000: every stored row) and of `POST /metrics/group/fairness/spd`
  (protected: sepal width, privileged 3.0 and above; outcome: `predict` = 0), each asked `--repeats` times.
`--outliers` configures an outlier detector on the reference rows first, so that every row is also inspected.
`--profile FILE` runs the monitor under cProfile (stats written to FILE when it stops; slower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import numpy as np
import orjson
import uvloop
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris

from wharf.logger.events import LogTarget, PayloadEvent

MONITOR_CPU = "0"
CLIENT_CPU = 1
START_TIMEOUT_S = 60.0
STORE_TIMEOUT_S = 300.0
TARGET_EVENTS_S = 5000.0
TARGET_METRIC_S = 1.0
OUTLIER_LABELS = {"detector": "outlier", "namespace": "default", "service": "iris"}
ID = "00000000-0000-0000-0000-000000000000"  # where each exchange's id goes in its events
TARGET = LogTarget("http://monitor/", "all", "iris", "default", "predictor", "iris-predictor-00001", "http://iris")


def templates(features: np.ndarray, classes: np.ndarray, host: str) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """Per iris row, the HTTP/1.1 request that posts its request event and the one that posts its response event,
    each split where the exchange's id goes: (request before, request after, response before, response after)."""
    out = []
    for row, label in zip(features, classes, strict=True):
        request = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}]}
        response = {
            "model_name": "iris",
            "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [int(label)]}],
        }
        halves: list[bytes] = []
        for status, payload in ((None, request), (200, response)):
            headers, body = PayloadEvent(TARGET, ID, orjson.dumps(payload), "application/json", {}, status).to_http()
            lines = [f"{name}: {value}" for name, value in headers.items()]
            head = "\r\n".join(["POST / HTTP/1.1", f"host: {host}", *lines, f"content-length: {len(body)}", "", ""])
            before, after = (head.encode() + body).split(ID.encode())
            halves += [before, after]
        out.append((halves[0], halves[1], halves[2], halves[3]))
    return out


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection posting pre-encoded requests one after another and reading each answer's
    status (aiohttp costs about as much CPU a request as the monitor spends on an event, so it, not the monitor, would
    be measured)."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's TCPTransport
        self._buffer = b""
        self._answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        status, *headers = self._buffer[:end].split(b"\r\n")
        length = 0
        for header in headers:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        self._buffer = self._buffer[end + 4 + length :]
        assert self._answer is not None
        self._answer.set_result(int(status[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError("the monitor closed the connection"))

    async def post(self, request: bytes) -> int:
        """Send `request`; the status of its answer."""
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._answer


class Sent(NamedTuple):
    start: float
    end: float
    refused: int  # events answered other than 202


def start_monitor(home: Path, profile: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    """`wharf monitor` on CPU 0 and a free port; the process and its URL once it says it is up."""
    python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
    command = ["taskset", "-c", MONITOR_CPU, *python, "-m", "wharf.cli", "monitor", "--port", "0"]
    command += ["--database", str(home / "monitor.db")]
    env = {**os.environ, "WHARF_HOME": str(home), "WHARF_MONITOR_RETENTION_ROWS": "10000000"}
    log = open(home / "monitor.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in (home / "monitor.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "monitor is up":
                    return process, f"http://127.0.0.1:{record['port']}"
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop(process)
    raise SystemExit(f"the monitor did not start:\n{(home / 'monitor.log').read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The monitor's counters, by sample name."""
    async with session.get(f"{url}/metrics") as answer:
        text = await answer.text()
    return {
        _key(sample.name, sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _key(name: str, labels: dict[str, str]) -> str:
    """`name{label=value,...}`, labels sorted, no quotes."""
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")


async def wait_for(session: aiohttp.ClientSession, url: str, done: Any, what: str) -> dict[str, float]:
    """The monitor's counters once `done(counters)` is true."""
    deadline = time.perf_counter() + STORE_TIMEOUT_S
    while not done(counts := await scrape(session, url)):
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what}: not within {STORE_TIMEOUT_S} s: {counts}")
        await asyncio.sleep(0.05)
    return counts


async def send(port: int, pairs: list[tuple[bytes, bytes, bytes, bytes]], exchanges: int, connections: int) -> Sent:
    """Post `exchanges` exchanges (request event, then response event) over `connections` connections."""
    loop = asyncio.get_running_loop()
    opened = [await loop.create_connection(Connection, "127.0.0.1", port) for _ in range(connections)]
    statuses: Counter[int] = Counter()
    next_exchange = 0

    async def worker(connection: Connection) -> None:
        nonlocal next_exchange
        while next_exchange < exchanges:
            number = next_exchange
            next_exchange += 1
            asked, asked_tail, answered, answered_tail = pairs[number % len(pairs)]
            request_id = b"bench-%d" % number
            statuses[await connection.post(asked + request_id + asked_tail)] += 1
            statuses[await connection.post(answered + request_id + answered_tail)] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(connection) for _, connection in opened))
    end = time.perf_counter()
    for transport, _ in opened:
        transport.close()
    return Sent(start, end, sum(count for status, count in statuses.items() if status != 202))


async def timed(session: aiohttp.ClientSession, url: str, body: dict[str, Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        async with session.post(url, json=body) as answer:
            text = await answer.text()
        times.append(time.perf_counter() - start)
        if answer.status != 200:
            raise SystemExit(f"{url}: {answer.status} {text}")
    return times


async def measure(url: str, pid: int, args: argparse.Namespace) -> None:
    features, classes = load_iris(return_X_y=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        tensor = {"name": "input-0", "shape": [len(features), 4], "datatype": "FP64", "data": features.ravel().tolist()}
        upload = {"model_name": "iris", "data_tag": "TRAINING", "request": {"inputs": [tensor]}}
        async with session.post(f"{url}/data/upload", json=upload) as answer:
            assert answer.status == 200, await answer.text()
        if args.outliers:
            async with session.post(f"{url}/detectors/outliers", json={"modelId": "iris"}) as answer:
                assert answer.status == 200, await answer.text()

        cpu_before, client_before = cpu_seconds(pid), time.process_time()
        port = int(url.rsplit(":", 1)[1])
        pairs = templates(features, classes, f"127.0.0.1:{port}")
        start, end, refused = await send(port, pairs, args.exchanges, args.connections)
        cpu, client_cpu = cpu_seconds(pid) - cpu_before, time.process_time() - client_before
        sent = 2 * args.exchanges
        counts = await wait_for(
            session, url, lambda c: c.get("wharf_monitor_rows_stored_total", 0) >= args.exchanges, "rows stored"
        )
        stored_at = time.perf_counter()
        received = sum(counts.get(f"wharf_monitor_events_total{{type={kind}}}", 0) for kind in ("request", "response"))
        print(f"events sent {sent}, refused {refused}, the monitor counted {received:.0f} received")
        print(
            f"received: {sent / (end - start):,.0f} events/s ({end - start:.1f} s); "
            f"monitor CPU {cpu:.1f} s = {1e6 * cpu / sent:.0f} us/event (this client's {client_cpu:.1f} s)"
        )
        print(
            f"stored:   {args.exchanges / (stored_at - start):,.0f} rows/s ({stored_at - start:.1f} s to the last row)"
        )
        if args.outliers:
            inspected = _key("wharf_monitor_inspected_rows_total", OUTLIER_LABELS)
            dropped = _key("wharf_monitor_detector_dropped_rows_total", {"detector": "outlier"})
            counts = await wait_for(
                session, url, lambda c: c.get(inspected, 0) + c.get(dropped, 0) >= args.exchanges, "rows inspected"
            )
            print(
                f"outliers: {counts[inspected]:.0f} rows inspected, {counts[dropped]:.0f} dropped (queue full), "
                f"the last {time.perf_counter() - end:.1f} s after the last event"
            )
        kstest = {"modelId": "iris", "referenceTag": "TRAINING", "batchSize": args.exchanges}
        sepal_width = sorted(set(features[:, 1].tolist()))
        spd = {
            "modelId": "iris",
            "batchSize": args.exchanges,
            "protectedAttribute": "input-0-1",
            "privilegedAttribute": [w for w in sepal_width if w >= 3.0],
            "unprivilegedAttribute": [w for w in sepal_width if w < 3.0],
            "outcomeName": "predict",
            "favorableOutcome": 0,
        }
        for name, path, body in (
            ("kstest", "/metrics/drift/kstest", kstest),
            ("spd", "/metrics/group/fairness/spd", spd),
        ):
            times = await timed(session, f"{url}{path}", body, args.repeats)
            print(
                f"{name} over {args.exchanges:,} rows: median {statistics.median(times):.3f} s, "
                f"min {min(times):.3f} s, max {max(times):.3f} s ({args.repeats} calls)"
            )
        rate = sent / (end - start)
        worst = max(await timed(session, f"{url}/metrics/drift/kstest", kstest, 1))
        verdict = "met" if rate >= TARGET_EVENTS_S and worst < TARGET_METRIC_S else "NOT met"
        print(f"targets (>= {TARGET_EVENTS_S:,.0f} events/s, a metric < {TARGET_METRIC_S} s): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=100_000, help="request + response pairs (rows stored)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="calls of each metric")
    parser.add_argument("--outliers", action="store_true", help="inspect every row with an outlier detector")
    parser.add_argument("--profile", type=Path, help="run the monitor under cProfile, stats to this file")
    args = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CPU})
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="wharf-monitor-bench-") as home:
        process, url = start_monitor(Path(home), args.profile.resolve() if args.profile else None)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(measure(url, process.pid, args))
        finally:
            stop(process)
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
