"""Iris through Kafka end to end against the same service through the gateway over REST at 64 connections.

The service is bench/gateway_pair.py's (one `wharf serve` replica of the iris model behind a Gateway, routed by
its Host header), pinned to CPU 0. REST: wrk on CPU 1, 64 keep-alive connections, bench/post.lua's 1-row V2
request through the gateway, after a warm-up. Kafka: the Tansu broker (tests/kafka_broker.py) and this script's
producer and reader on CPU 1, the consumer (`python -m wharf.eventing`, sending through the gateway, merging up
to WHARF_KAFKA_MAX_BATCH records per call) on CPU 0 beside the service, so Wharf's side gets one core either way.
Each message is the same 1-row V2 request with its own id header.
- throughput: BENCH_KAFKA_MESSAGES messages produced at once to a 4-partition topic; requests/s is the messages
  over the time from the first produce to the last answer read back;
- latency: then messages paced at the first REST run's requests/s for BENCH_KAFKA_PACED_S seconds; p50/p99 from
  each message's produce to its answer read back by the reader.
REST is measured before and after Kafka (the consumer stopped), and the ratio taken against their mean, so that
load from elsewhere on a shared machine weighs on both sides alike.
The bar (issue 19): Kafka's requests/s at least 1.5x REST's at 64 connections. Output: a Markdown table, printed
and written to bench/results/kafka.md; logs in bench/results/kafka/.

Usage (from the repository root): .venv/bin/python bench/kafka.py
Environment: BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_KAFKA_MESSAGES (100000), BENCH_KAFKA_PACED_S (10),
  WHARF_KAFKA_MAX_BATCH / WHARF_KAFKA_MAX_IN_FLIGHT (the consumer's, default 64 / 8), ports BENCH_KAFKA_PORT (18300,
  the gateway; 18301-18303 its gRPC port and the replica's).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from report import parse_wrk  # noqa: E402

from tests.kafka_broker import Broker, create_topics  # noqa: E402

HOST = "127.0.0.1"
SERVICE_HOST = "iris.default.example.com"
OUT = ROOT / "bench/results/kafka"
BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "2s")
MESSAGES = int(os.environ.get("BENCH_KAFKA_MESSAGES", "100000"))
PACED_S = float(os.environ.get("BENCH_KAFKA_PACED_S", "10"))
PORT = int(os.environ.get("BENCH_KAFKA_PORT", "18300"))


def pinned(cpu: int, command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), *command], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{url}: the process exited with {proc.returncode}"
        try:
            if httpx.get(url, headers={"host": SERVICE_HOST}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready within {timeout} s"
        time.sleep(0.3)


def rest(url: str, name: str) -> dict:
    """wrk at 64 connections through the gateway: requests/s, p50, p99, errors."""
    wrk = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c64",
        "--latency",
        "-s",
        "bench/post.lua",
        "-H",
        f"Host: {SERVICE_HOST}",
    ]
    subprocess.run([*wrk, "-d", WARMUP, url], check=True, capture_output=True, cwd=ROOT, timeout=120)
    found = subprocess.run(
        [*wrk, "-d", DURATION, url], check=True, capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    (OUT / f"{name}-wrk.txt").write_text(found.stdout)
    return parse_wrk(found.stdout)


async def kafka(bootstrap: str, requests: str, replies: str, rate: float) -> dict:
    """The burst's requests/s and the paced run's produce-to-answer latencies."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=512 * 1024)
    reader = AIOKafkaConsumer(
        replies, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=5
    )
    await producer.start()
    await reader.start()
    sent: dict[bytes, float] = {}
    answered: dict[bytes, float] = {}

    async def read_until(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(answered) < n:
            assert time.monotonic() < deadline, f"{len(answered)} of {n} answers within {timeout} s"
            for records in (await reader.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for r in records:
                    answered.setdefault(dict(r.headers)["id"], now)

    async def produce(ids: list[bytes], pace: float | None) -> None:
        start = time.perf_counter()
        acks = []
        for i, ident in enumerate(ids):
            if pace is not None and (ahead := start + i / pace - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            sent[ident] = time.perf_counter()
            acks.append(await producer.send(requests, BODY, headers=[("id", ident)]))
        await asyncio.gather(*acks)

    try:
        # warm-up: the consumer has joined its group and the replica has answered
        await produce([b"w%d" % i for i in range(1000)], None)
        await read_until(1000, 120)
        burst = [b"b%d" % i for i in range(MESSAGES)]
        began = time.perf_counter()
        reading = asyncio.create_task(read_until(1000 + MESSAGES, 300))
        await produce(burst, None)
        await reading
        burst_s = max(answered[i] for i in burst) - began
        burst_latency = np.array([answered[i] - sent[i] for i in burst]) * 1000
        paced = [b"p%d" % i for i in range(int(rate * PACED_S))]
        reading = asyncio.create_task(read_until(1000 + MESSAGES + len(paced), 120 + PACED_S))
        await produce(paced, rate)
        await reading
        latency = np.array([answered[i] - sent[i] for i in paced]) * 1000
    finally:
        await reader.stop()
        await producer.stop()
    return {
        "rps": MESSAGES / burst_s,
        "burst_p99": float(np.percentile(burst_latency, 99)),
        "paced_rate": rate,
        "p50": float(np.percentile(latency, 50)),
        "p99": float(np.percentile(latency, 99)),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "model.joblib"
    subprocess.run([sys.executable, "examples/iris/train.py", str(model)], check=True, cwd=ROOT, timeout=120)
    ports = [str(PORT + 2), str(PORT + 3), str(PORT), str(PORT + 1)]
    service = pinned(
        0, [sys.executable, "bench/gateway_pair.py", str(model), *ports, f"http://{HOST}:9/"], OUT / "service.log"
    )
    os.sched_setaffinity(0, {1})  # this process, and what it starts unpinned (the broker), on CPU 1
    broker = consumer = None
    try:
        wait_ready(f"http://{HOST}:{PORT}/v2/models/iris/ready", service)
        url = f"http://{HOST}:{PORT}/v2/models/iris/infer"
        before = rest(url, "rest-before")
        broker = Broker.start()
        tag = uuid.uuid4().hex[:6]
        requests, replies = f"bench-req-{tag}", f"bench-rep-{tag}"
        create_topics(broker.bootstrap, [requests], partitions=4)
        create_topics(broker.bootstrap, [replies], partitions=4)
        env = {
            **os.environ,
            "WHARF_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "WHARF_KAFKA_TOPICS": requests,
            "WHARF_KAFKA_GROUP_ID": f"bench-{tag}", "WHARF_KAFKA_INITIAL_OFFSET": "earliest",
            "WHARF_KAFKA_SINK_URL": f"http://{HOST}:{PORT}", "WHARF_KAFKA_SINK_HOST": SERVICE_HOST,
            "WHARF_KAFKA_MODEL": "iris", "WHARF_KAFKA_REPLY_TOPIC": replies, "WHARF_KAFKA_LOG_LEVEL": "warning",
        }  # fmt: skip
        consumer = pinned(0, [sys.executable, "-m", "wharf.eventing"], OUT / "consumer.log", env)
        by_kafka = asyncio.run(kafka(broker.bootstrap, requests, replies, before["rps"]))
        consumer.terminate()
        consumer.wait(30)
        after = rest(url, "rest-after")
    finally:
        for proc in (consumer, service):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        if broker is not None:
            broker.stop()
    rest_rps = (before["rps"] + after["rps"]) / 2
    ratio = by_kafka["rps"] / rest_rps
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        f"Kafka vs REST through the gateway, iris, Wharf at {commit.strip()}, Wharf's side on CPU 0 "
        f"(load average {os.getloadavg()[0]:.2f} at the end)",
        "",
        "| path | requests/s | p50 ms | p99 ms | notes |",
        "|---|---:|---:|---:|---|",
        *(
            f"| REST, 64 connections, {when} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | errors {r['errors']} |"
            for when, r in (("before", before), ("after", after))
        ),
        f"| Kafka, {MESSAGES} at once | {by_kafka['rps']:.0f} | | {by_kafka['burst_p99']:.0f} | p99 includes the backlog |",
        f"| Kafka, paced at {by_kafka['paced_rate']:.0f}/s | | {by_kafka['p50']:.2f} | {by_kafka['p99']:.2f} | produce to answer read |",
        "",
        f"Kafka / REST requests/s (REST: the mean of before and after): {ratio:.2f}x (bar: 1.5x) "
        f"{'PASS' if ratio >= 1.5 else 'FAIL'}",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    (ROOT / "bench/results/kafka.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
