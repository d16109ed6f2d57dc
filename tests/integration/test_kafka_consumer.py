"""The Kafka consumer (`python -m wharf.eventing`) as a real process between the real Tansu broker and a real
`wharf serve` of the iris model: every message answered once at least, in the reply topic with its id; refusals
in the dead-letter topic with their reasons; a killed consumer or a stopped broker loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import RunningServer
from tests.kafka_broker import Broker, create_topics, kafka_broker, produce, read_all  # noqa: F401
from tests.processes import start

pytestmark = pytest.mark.slow

ROW = [5.1, 3.5, 1.4, 0.2]  # a setosa: class 0


def v2(row: list[float] = ROW, rows: int = 1) -> bytes:
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP32", "data": row * rows}]})


class ConsumerProcess:
    def __init__(self, proc: subprocess.Popen, port: int, log: list[str]) -> None:
        self.proc, self.port, self.log = proc, port, log

    def status(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.port}/status", timeout=10).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def topics(kafka_broker: Broker) -> dict[str, str]:  # noqa: F811
    """Fresh request, reply and dead-letter topics (4 request partitions) and a fresh group."""
    tag = uuid.uuid4().hex[:8]
    names = {"requests": f"req-{tag}", "replies": f"rep-{tag}", "dead": f"dlt-{tag}", "group": f"g-{tag}"}
    create_topics(kafka_broker.bootstrap, [names["requests"]], partitions=4)
    create_topics(kafka_broker.bootstrap, [names["replies"], names["dead"]], partitions=1)
    return names


@pytest.fixture
def consumer(
    kafka_broker: Broker,  # noqa: F811
    iris_server: RunningServer,
    topics: dict[str, str],
) -> Iterator[Callable[..., ConsumerProcess]]:
    """Start consumers of the request topic answering through the iris server; each stopped at the end."""
    started: list[ConsumerProcess] = []

    def launch(**extra: str) -> ConsumerProcess:
        env = {
            **os.environ,
            "WHARF_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
            "WHARF_KAFKA_TOPICS": topics["requests"],
            "WHARF_KAFKA_GROUP_ID": topics["group"],
            "WHARF_KAFKA_INITIAL_OFFSET": "earliest",
            "WHARF_KAFKA_SINK_URL": iris_server.url,
            "WHARF_KAFKA_MODEL": "iris",
            "WHARF_KAFKA_REPLY_TOPIC": topics["replies"],
            "WHARF_KAFKA_DEAD_LETTER_TOPIC": topics["dead"],
            "WHARF_KAFKA_BROKER_TIMEOUT_S": "3",
            "WHARF_KAFKA_SESSION_TIMEOUT_S": "6",
            **{f"WHARF_KAFKA_{k.upper()}": v for k, v in extra.items()},
        }
        proc, line, log = start([sys.executable, "-m", "wharf.eventing"], env, "serving", 30.0)
        found = ConsumerProcess(proc, line["status_port"], log)
        started.append(found)
        return found

    yield launch
    for c in started:
        c.stop()


def ids_of(records: list[Any]) -> list[str]:
    return [dict(r.headers)["id"].decode() for r in records]


def test_every_message_is_answered_with_its_id(
    kafka_broker: Broker,  # noqa: F811
    topics: dict[str, str],
    consumer: Callable[..., ConsumerProcess],
) -> None:
    n = 20_000
    c = consumer()
    produce(kafka_broker.bootstrap, topics["requests"], [(b"k%d" % i, v2(), [("id", b"m%d" % i)]) for i in range(n)])
    answers = read_all(kafka_broker.bootstrap, topics["replies"], n, timeout=90)
    assert sorted(ids_of(answers)) == sorted(f"m{i}" for i in range(n))
    for record in answers[:50]:
        doc = orjson.loads(record.value)
        assert doc["outputs"][0]["data"] == [0] and doc["outputs"][0]["shape"] == [1]
        assert doc["id"] == dict(record.headers)["id"].decode()
        assert record.key == b"k" + doc["id"][1:].encode()
    status = c.status()
    assert status["state"] == "consuming"
    assert status["counters"]["answered"] == n and status["counters"]["dead_lettered"] == 0
    assert status["latency_ms"]["count"] > 0
