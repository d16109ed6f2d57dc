"""The Kafka consumer (`python -m wharf.eventing`) as a real process between the real Tansu broker and a real
`wharf serve` of the iris model: every message answered once at least, in the reply topic with its id; refusals
in the dead-letter topic with their reasons; a killed consumer or a stopped broker loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def id_of(record: Any) -> str:
    return dict(record.headers)["id"].decode()


def ids_of(records: list[Any]) -> list[str]:
    return [id_of(r) for r in records]


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


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """`check()`'s first truthy value, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.1)
    return found


def test_a_rebalance_and_a_consumer_killed_half_way_lose_no_message(
    kafka_broker: Broker,  # noqa: F811
    topics: dict[str, str],
    consumer: Callable[..., ConsumerProcess],
) -> None:
    n = 20_000
    messages = [(None, v2(), [("id", b"m%d" % i)]) for i in range(n)]
    produce(kafka_broker.bootstrap, topics["requests"], messages[: n // 2])
    first = consumer(max_batch="4", max_in_flight="1")
    wait_for(lambda: first.status()["counters"]["answered"] >= n // 10, "a tenth answered")
    second = consumer()  # joins: the group rebalances, the first hands over partitions
    wait_for(lambda: second.status()["partitions"] and len(first.status()["partitions"]) < 4, "partitions shared")
    produce(kafka_broker.bootstrap, topics["requests"], messages[n // 2 :])
    first.proc.send_signal(signal.SIGKILL)  # with records of its partitions still to answer
    first.proc.wait(10)
    answers = read_all(kafka_broker.bootstrap, topics["replies"], n, timeout=90, distinct=id_of)
    seen = Counter(map(id_of, answers))
    assert set(seen) == {f"m{i}" for i in range(n)}  # none missing; those answered twice are the duplicates
    final = wait_for(lambda: (s := second.status())["lag"] == 0 and len(s["partitions"]) == 4 and s, "all committed")
    assert final["counters"]["answered"] >= 1


def test_undecodable_messages_and_refusals_go_to_the_dead_letter_topic(
    kafka_broker: Broker,  # noqa: F811
    topics: dict[str, str],
    consumer: Callable[..., ConsumerProcess],
) -> None:
    bad_row = orjson.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}
    )
    three_features = orjson.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": ROW[:3]}]}
    )
    records = [
        (b"ok", v2(), [("id", b"good-1")]),
        (b"nj", b"{not json", [("id", b"not-json")]),
        (b"ok", v2(), [("id", b"good-2")]),
        (b"bad", bad_row, [("id", b"strings")]),  # merges with its neighbours; the merged call is refused
        (b"ok", v2(), [("id", b"good-3")]),
        (b"arr", b"[1, 2]", [("id", b"not-object")]),
        (b"3f", three_features, [("id", b"three-features")]),
        (b"v1", orjson.dumps({"instances": [ROW, ROW]}), [("id", b"v1-two")]),
        (b"none", orjson.dumps({"hello": 1}), [("id", b"neither")]),
    ]
    c = consumer(max_batch="8")
    produce(kafka_broker.bootstrap, topics["requests"], records)
    dead = read_all(kafka_broker.bootstrap, topics["dead"], 5, timeout=60)
    reasons = {dict(r.headers)["id"].decode(): dict(r.headers)["wharf-error"].decode() for r in dead}
    assert set(reasons) == {"not-json", "strings", "not-object", "three-features", "neither"}
    assert "not JSON" in reasons["not-json"] and "not a JSON object" in reasons["not-object"]
    assert "neither a V2 request" in reasons["neither"]
    statuses = {dict(r.headers)["id"].decode(): dict(r.headers).get("wharf-status") for r in dead}
    assert statuses["strings"] == b"400" and statuses["three-features"] == b"400" and statuses["not-json"] is None
    by_id = {dict(r.headers)["id"].decode(): r for r in dead}
    assert by_id["not-json"].value == b"{not json" and by_id["not-json"].key == b"nj"  # the request as it came
    answers = read_all(kafka_broker.bootstrap, topics["replies"], 4, timeout=60)
    assert sorted(ids_of(answers)) == ["good-1", "good-2", "good-3", "v1-two"]
    v1 = next(orjson.loads(r.value) for r in answers if dict(r.headers)["id"] == b"v1-two")
    assert v1 == {"predictions": [0, 0]}
    status = wait_for(lambda: (s := c.status())["lag"] == 0 and s, "all committed")
    assert status["counters"]["dead_lettered"] == 5 and status["counters"]["answered"] == 4


def test_cloudevents_structured_and_binary_are_answered_in_their_mode(
    kafka_broker: Broker,  # noqa: F811
    topics: dict[str, str],
    consumer: Callable[..., ConsumerProcess],
) -> None:
    request = orjson.loads(v2())
    structured = orjson.dumps(
        {"specversion": "1.0", "id": "ce-s", "source": "test", "type": "infer", "datacontenttype": "application/json",
         "data": request}
    )  # fmt: skip
    binary_headers = [("ce_specversion", b"1.0"), ("ce_id", b"ce-b"), ("ce_source", b"test"), ("ce_type", b"infer"),
                      ("content-type", b"application/json")]  # fmt: skip
    c = consumer(format="cloudevent")
    produce(
        kafka_broker.bootstrap,
        topics["requests"],
        [(b"s", structured, [("content-type", b"application/cloudevents+json")]), (b"b", v2(), binary_headers),
         (b"plain", v2(), [("id", b"plain")])],
    )  # fmt: skip
    answers = {id_of(r): r for r in read_all(kafka_broker.bootstrap, topics["replies"], 2)}
    assert set(answers) == {"ce-s", "ce-b"}
    event = orjson.loads(answers["ce-s"].value)
    assert event["id"] == "ce-s" and event["type"] == "org.kubeflow.serving.inference.response"
    assert event["data"]["outputs"][0]["data"] == [0]
    headers = dict(answers["ce-b"].headers)
    assert headers["ce_id"] == b"ce-b" and headers["ce_specversion"] == b"1.0"
    assert orjson.loads(answers["ce-b"].value)["outputs"][0]["data"] == [0]
    dead = read_all(kafka_broker.bootstrap, topics["dead"], 1)
    assert "not a CloudEvent" in dict(dead[0].headers)["wharf-error"].decode()
    assert wait_for(lambda: (s := c.status())["lag"] == 0 and s, "all committed")["counters"]["answered"] == 2


def test_a_stopped_broker_is_reported_and_nothing_is_lost(
    kafka_broker: Broker,  # noqa: F811
    topics: dict[str, str],
    consumer: Callable[..., ConsumerProcess],
) -> None:
    n = 500
    c = consumer(max_batch="2", max_in_flight="1")
    produce(kafka_broker.bootstrap, topics["requests"], [(None, v2(), [("id", b"m%d" % i)]) for i in range(n)])
    wait_for(lambda: c.status()["counters"]["answered"] > 0, "answering")
    kafka_broker.pause()
    try:
        down = wait_for(lambda: (s := c.status())["state"] == "broker-unavailable" and s, "broker-unavailable", 30)
        assert "no answer within" in down["reason"]
    finally:
        kafka_broker.resume()
    wait_for(lambda: c.status()["state"] == "consuming", "consuming again", 60)
    answers = read_all(kafka_broker.bootstrap, topics["replies"], n, timeout=90, distinct=id_of)
    assert set(map(id_of, answers)) == {f"m{i}" for i in range(n)}
