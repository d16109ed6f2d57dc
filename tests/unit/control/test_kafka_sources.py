"""The daemon's KafkaSources: each source's sink resolved and its members configured through their environment;
members supervised as real processes (a stand-in consumer that logs its status port and answers GET /status as
`wharf.eventing` does), restarted when they die, adopted by a new supervisor, scaled with their lag, stopped with
their source; the status says why a source is not ready."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from wharf.control.kafka_sources import (
    KafkaSources,
    KafkaSourceSettings,
    Sink,
    SinkMissing,
    member_env,
    resolve_sink,
    services_fed,
)
from wharf.control.spec import parse_manifest
from wharf.control.spec.kafkasource import KafkaSource
from wharf.control.store import Store
from wharf.eventing.settings import ConsumerSettings

pytestmark = pytest.mark.anyio
GATEWAY = "http://127.0.0.1:8000"
DOMAIN = "example.com"
ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "iris", "namespace": "default"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/m"}}},
}
# A stand-in for `python -m wharf.eventing`: logs the serving line with its status port, answers GET /status with
# the figures in the file named by FAKE_REPORT (lag, partitions), and records its environment.
FAKE_CONSUMER = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Status(BaseHTTPRequestHandler):
    def do_GET(self):
        report = json.load(open(os.environ["FAKE_REPORT"]))
        body = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Status)
with open(os.environ["FAKE_ENV"] + "." + str(os.getpid()), "w") as f:
    json.dump({k: v for k, v in os.environ.items() if k.startswith("WHARF_KAFKA_")}, f)
print(json.dumps({"event": "serving", "status_port": server.server_address[1]}), flush=True)
server.serve_forever()
"""


def report(lag: int = 0, partitions: int = 1, state: str = "consuming", reason: str | None = None) -> dict:
    return {
        "state": state,
        "reason": reason,
        "partitions": [
            {
                "topic": "requests",
                "partition": p,
                "committed": 10,
                "end": 10 + (lag if p == 0 else 0),
                "lag": lag * (p == 0),
            }
            for p in range(partitions)
        ],
        "lag": lag,
        "counters": {"consumed": 7, "answered": 6, "dead_lettered": 1, "retried": 0, "duplicates_suspected": 0},
        "latency_ms": {"p50": 1.5, "p90": 2.0, "p99": 3.0, "max": 4.0, "count": 7},
    }


def source(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    ref = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "iris"}
    given = {"bootstrapServers": ["127.0.0.1:9092"], "topics": ["requests"], "sink": {"ref": ref}} | spec
    metadata = {"name": "feed", "namespace": "default", "annotations": annotations or {}}
    manifest = {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource", "metadata": metadata}
    return parse_manifest(manifest | {"spec": given}).to_manifest()


def parsed(manifest: dict[str, Any]) -> KafkaSource:
    found = parse_manifest(manifest)
    assert isinstance(found, KafkaSource)
    return found


# -- the sink and the members' settings --------------------------------------------------------------------------


def test_a_service_sink_goes_through_the_gateway_at_its_host_and_a_missing_one_is_said(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    with pytest.raises(SinkMissing, match="InferenceService default/iris not found"):
        resolve_sink(parsed(source()), store, GATEWAY, DOMAIN)
    store.put("InferenceService", "default", "iris", ISVC)
    sink = resolve_sink(parsed(source()), store, GATEWAY, DOMAIN)
    assert sink == Sink(GATEWAY, "iris.default.example.com", "", "iris")
    assert sink.uri == "http://iris.default.example.com"


def test_a_uri_sink_is_called_as_it_is_or_through_the_gateway_under_its_domain(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    outside = parsed(source(sink={"uri": "http://10.0.0.5:9000/v2/models/m/infer"}))
    assert resolve_sink(outside, store, GATEWAY, DOMAIN) == Sink("http://10.0.0.5:9000", None, "", "m")
    inside = parsed(source(sink={"uri": "http://iris.default.example.com/v1/models/iris:predict"}))
    assert resolve_sink(inside, store, GATEWAY, DOMAIN) == Sink(GATEWAY, "iris.default.example.com", "", "iris")


def test_the_lag_is_waiting_for_the_sink_service_or_the_services_of_the_sink_graph(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    assert services_fed(parsed(source()), store, "default") == {("default", "iris")}
    graph_ref = {"ref": {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph", "name": "chain"}}
    fed_by_graph = parsed(source(sink=graph_ref))
    assert services_fed(fed_by_graph, store, "default") == set()  # no graph yet
    steps = [{"serviceName": "iris"}, {"serviceName": "xgb"}, {"serviceUrl": "http://elsewhere/v2/models/m/infer"}]
    chain = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "chain"},
        "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": steps}}},
    }
    store.put("InferenceGraph", "default", "chain", chain)
    assert services_fed(fed_by_graph, store, "default") == {("default", "iris"), ("default", "xgb")}
    assert services_fed(parsed(source(sink={"uri": "http://h/v2/models/m/infer"})), store, "default") == set()


def test_the_members_environment_is_the_consumers_settings(tmp_path: Path) -> None:
    manifest = source(
        {"kafka.wharf.dev/reply-topic": "answers", "kafka.wharf.dev/dead-letter-topic": "refused",
         "kafka.wharf.dev/max-batch": "32"},
        initialOffset="earliest", delivery={"retry": 3, "backoffDelay": "PT0.5S", "timeout": "PT5S"},
        net={"sasl": {"enable": True}, "tls": {"enable": True}},
    )  # fmt: skip
    env = member_env(parsed(manifest), Sink(GATEWAY, "iris.default.example.com", "", "iris"))
    assert env == {
        "WHARF_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "WHARF_KAFKA_TOPICS": "requests",
        "WHARF_KAFKA_GROUP_ID": "wharf-kafkasource-default-feed",
        "WHARF_KAFKA_INITIAL_OFFSET": "earliest",
        "WHARF_KAFKA_SINK_URL": GATEWAY,
        "WHARF_KAFKA_SINK_HOST": "iris.default.example.com",
        "WHARF_KAFKA_SINK_PATH_PREFIX": "",
        "WHARF_KAFKA_MODEL": "iris",
        "WHARF_KAFKA_REPLY_TOPIC": "answers",
        "WHARF_KAFKA_DEAD_LETTER_TOPIC": "refused",
        "WHARF_KAFKA_FORMAT": "auto",
        "WHARF_KAFKA_MAX_BATCH": "32",
        "WHARF_KAFKA_STATUS_PORT": "0",
        "WHARF_KAFKA_MAX_RETRIES": "3",
        "WHARF_KAFKA_RETRY_INITIAL_S": "0.5",
        "WHARF_KAFKA_REQUEST_TIMEOUT_S": "5.0",
        "WHARF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }
    credentials = {"sasl_mechanism": "PLAIN", "sasl_plain_username": "u", "sasl_plain_password": "p"}  # wharf up's
    read = ConsumerSettings(**{k.removeprefix("WHARF_KAFKA_").lower(): v for k, v in env.items()}, **credentials)
    assert read.topics == ["requests"] and read.max_batch == 32 and read.sink_host == "iris.default.example.com"


# -- supervision -------------------------------------------------------------------------------------------------


class Fixture:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = Store(tmp_path / "wharf.db")
        self.program = tmp_path / "fake_consumer.py"
        self.program.write_text(FAKE_CONSUMER)
        self.report_file = tmp_path / "report.json"
        self.set_report(report())
        self.settings = KafkaSourceSettings(backoff_initial_s=0.2, stop_grace_s=2, scale_down_delay_s=0)
        self.made: list[KafkaSources] = []

    def set_report(self, figures: dict) -> None:
        self.report_file.write_text(json.dumps(figures))

    def sources(self) -> KafkaSources:
        command = (sys.executable, str(self.program))
        self.made.append(KafkaSources(self.store, self.tmp, GATEWAY, DOMAIN, self.settings, command))
        return self.made[-1]

    def status(self) -> dict[str, Any]:
        resource = self.store.get("KafkaSource", "default", "feed")
        assert resource is not None
        return resource.status


async def until(sources: KafkaSources, holds: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            await sources.sync()
            if holds():
                return
            await asyncio.sleep(0.05)


def ready(status: dict[str, Any]) -> str:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"), "")


@pytest.fixture
async def fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fixture]:
    made = Fixture(tmp_path)
    monkeypatch.setenv("FAKE_REPORT", str(made.report_file))  # the members inherit the environment
    monkeypatch.setenv("FAKE_ENV", str(tmp_path / "env"))
    yield made
    for sources in made.made:  # whatever the test left running
        await sources.stop()
    made.store.close()


def pids(status: dict[str, Any]) -> list[int]:
    return [m["pid"] for m in status.get("members", []) if m["pid"]]


async def test_members_run_are_restarted_adopted_scaled_and_stopped(fixture: Fixture) -> None:
    fixture.store.put("KafkaSource", "default", "feed", source({"autoscaling.eventing.knative.dev/max-scale": "3"}))
    sources = fixture.sources()
    await sources.sync()
    status = fixture.status()  # no sink yet: no member
    assert ready(status) == "False" and status["consumers"] == 0
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "SinkNotFound"

    fixture.store.put("InferenceService", "default", "iris", ISVC)
    await until(sources, lambda: ready(fixture.status()) == "True")
    status = fixture.status()
    assert status["consumers"] == 1 and status["sinkUri"] == "http://iris.default.example.com"
    assert status["counters"] == {
        "consumed": 7,
        "answered": 6,
        "deadLettered": 1,
        "retried": 0,
        "duplicatesSuspected": 0,
    }
    assert status["latencyMs"]["p99"] == 3.0
    (first,) = pids(status)
    env = json.loads((fixture.tmp / f"env.{first}").read_text())
    assert env["WHARF_KAFKA_SINK_HOST"] == "iris.default.example.com" and env["WHARF_KAFKA_MODEL"] == "iris"

    os.kill(first, signal.SIGKILL)  # a member that dies is started again
    await until(sources, lambda: pids(fixture.status()) not in ([], [first]) and ready(fixture.status()) == "True")
    (second,) = pids(fixture.status())
    assert fixture.status()["members"][0]["restarts"] == 1
    assert "status -9" in fixture.status()["members"][0]["lastError"]

    fixture.set_report(report(lag=250, partitions=2))  # the lag asks for 3, the partitions allow 2
    await until(sources, lambda: fixture.status()["consumers"] == 2 and len(pids(fixture.status())) == 2)
    assert fixture.status()["lag"] == 250
    assert sources.waiting == {("default", "iris"): 4}  # 250 messages in calls of 64 (2 members hold up to 16)

    fixture.set_report(report(lag=0, partitions=2))  # back to one member (no delay here), the newest one going
    await until(sources, lambda: len(pids(fixture.status())) == 1)
    assert pids(fixture.status()) == [second]

    adopter = fixture.sources()  # a new daemon's supervisor takes the running member back as it is
    await adopter.adopt()
    await until(adopter, lambda: ready(fixture.status()) == "True")
    assert pids(fixture.status()) == [second]

    fixture.set_report(report(state="broker-unavailable", reason="no broker answers at 127.0.0.1:9092"))
    await until(adopter, lambda: ready(fixture.status()) == "False")
    condition = next(c for c in fixture.status()["conditions"] if c["type"] == "Ready")
    assert condition["reason"] == "BrokerUnavailable" and "127.0.0.1:9092" in condition["message"]

    fixture.store.delete("KafkaSource", "default", "feed")  # its members stop with it
    await adopter.sync()
    assert adopter.waiting == {}
    await adopter.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


async def test_the_machine_runs_at_most_its_cap_of_members_and_a_source_held_below_says_so(fixture: Fixture) -> None:
    fixture.settings = KafkaSourceSettings(max_members=1, stop_grace_s=2)
    fixture.store.put("InferenceService", "default", "iris", ISVC)
    fixture.store.put("KafkaSource", "default", "feed", source())
    other = source() | {"metadata": {**source()["metadata"], "name": "other"}}
    other["spec"] = {**other["spec"], "consumerGroup": "other"}
    fixture.store.put("KafkaSource", "default", "other", other)
    sources = fixture.sources()
    await until(sources, lambda: ready(fixture.status()) == "True")
    held = fixture.store.get("KafkaSource", "default", "other")
    assert held is not None and held.status["consumers"] == 0
    reason = next(c for c in held.status["conditions"] if c["type"] == "Ready")
    assert reason["reason"] == "NoMembers" and "WHARF_KAFKASOURCE_MAX_MEMBERS" in reason["message"]
    assert "WHARF_KAFKASOURCE_MAX_MEMBERS" in held.status["scale"]["reason"]


async def test_settings_the_consumer_would_refuse_start_no_member_and_say_why(fixture: Fixture) -> None:
    fixture.store.put("InferenceService", "default", "iris", ISVC)
    fixture.store.put("KafkaSource", "default", "feed", source(net={"sasl": {"enable": True}}))
    sources = fixture.sources()
    await sources.sync()
    status = fixture.status()
    ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready_condition["reason"] == "InvalidSettings" and "sasl_mechanism" in ready_condition["message"]
    assert status["consumers"] == 0 and status["members"] == []


async def test_a_stored_source_that_no_longer_reads_stops_neither_the_others_nor_the_daemon(fixture: Fixture) -> None:
    broken = source() | {"metadata": {"name": "broken", "namespace": "default"}}
    broken["spec"] = {**broken["spec"], "retiredField": 1}  # as an older Wharf might have stored it
    fixture.store.put("KafkaSource", "default", "broken", broken)
    fixture.store.put("KafkaSource", "default", "feed", source())
    sources = fixture.sources()
    await sources.adopt()
    await sources.sync()  # neither raises; the good source gets its status
    assert next(c for c in fixture.status()["conditions"] if c["type"] == "Ready")["reason"] == "SinkNotFound"
