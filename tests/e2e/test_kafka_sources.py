"""KafkaSources on a real `wharf up` with the real Tansu broker: a Knative KafkaSource whose sink is the iris service
answers every message to its reply topic, through a member, the service's replica and `wharf up` each killed with
SIGKILL half way (the member restarted, then adopted by the next daemon; no id missing); malformed messages land
in the dead-letter topic; a service scaled to zero scales up when messages arrive; an InferenceGraph as the sink;
an unknown field refused at apply (400, naming it) and a missing sink or broker reported; wharf get/describe and
kubectl list the source. One broker and one daemon (restarted once) for the module; the iris model is trained
here."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import orjson
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.e2e.conftest import Daemon, start_daemon
from tests.kafka_broker import Broker, create_topics, kafka_broker, produce, read_all  # noqa: F401
from tests.programs import program

pytestmark = pytest.mark.slow

ROW = [5.1, 3.5, 1.4, 0.2]  # a setosa: class 0
SOURCES = "/apis/sources.knative.dev/v1beta1/namespaces/default/kafkasources"
SERVICES = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
DAEMON_ENV = {
    "WHARF_KAFKASOURCE_BACKOFF_INITIAL_S": "0.5",
    "WHARF_KAFKASOURCE_SCALE_DOWN_DELAY_S": "3",
    "WHARF_KAFKA_BROKER_TIMEOUT_S": "3",  # inherited by every member
    "WHARF_KAFKA_SESSION_TIMEOUT_S": "6",  # a killed member's partitions move on after this
}


def v2(rows: int = 1) -> bytes:
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP32", "data": ROW * rows}]})


def iris(name: str, model: Path, min_replicas: int = 1) -> dict[str, Any]:
    annotations = {"autoscaling.knative.dev/window": "6s"} if min_replicas == 0 else {}
    predictor = {
        "minReplicas": min_replicas,
        "model": {"modelFormat": {"name": "sklearn"}, "protocolVersion": "v2", "storageUri": str(model)},
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"predictor": predictor},
    }


def kafka_source(
    name: str, bootstrap: str, topics: dict[str, str], sink: dict[str, Any], **annotations: str
) -> dict[str, Any]:
    wharf = {"kafka.wharf.dev/reply-topic": topics["replies"], "kafka.wharf.dev/dead-letter-topic": topics["dead"]}
    return {
        "apiVersion": "sources.knative.dev/v1beta1",
        "kind": "KafkaSource",
        "metadata": {"name": name, "annotations": {**wharf, **annotations}},
        "spec": {
            "bootstrapServers": [bootstrap],
            "topics": [topics["requests"]],
            "consumerGroup": topics["group"],
            "initialOffset": "earliest",
            "sink": sink,
        },
    }


def ref(kind: str, name: str) -> dict[str, Any]:
    version = "serving.kserve.io/v1beta1" if kind == "InferenceService" else "serving.kserve.io/v1alpha1"
    return {"ref": {"apiVersion": version, "kind": kind, "name": name}}


def fresh_topics(broker: Broker, partitions: int) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    names = {"requests": f"req-{tag}", "replies": f"rep-{tag}", "dead": f"dlt-{tag}", "group": f"g-{tag}"}
    create_topics(broker.bootstrap, [names["requests"]], partitions=partitions)
    create_topics(broker.bootstrap, [names["replies"], names["dead"]], partitions=1)
    return names


def apply(daemon: Daemon, *documents: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """Apply `documents` through the control API (as `wharf apply` does); its answer, which must have `status`."""
    with daemon.control() as control:
        answer = control.post(
            "/apis/apply",
            content=yaml.safe_dump_all(documents).encode(),
            headers={"content-type": "application/yaml"},
        )
    assert answer.status_code == status, answer.text
    return answer.json()


def delete(daemon: Daemon, name: str) -> None:
    with daemon.control() as control:
        assert control.delete(f"{SOURCES}/{name}").status_code == 200


def source_of(daemon: Daemon, name: str, collection: str = SOURCES) -> dict[str, Any]:
    with daemon.control() as control:
        answer = control.get(f"{collection}/{name}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def service_of(daemon: Daemon, name: str) -> dict[str, Any]:
    return source_of(daemon, name, SERVICES)


def condition(resource: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in resource.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """`check()`'s first truthy value, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.2)
    return found


def ids_of(records: list[Any]) -> set[str]:
    return {dict(r.headers)["id"].decode() for r in records}


def answers_for(bootstrap: str, topics: dict[str, str], wanted: set[str], timeout: float = 120.0) -> list[Any]:
    """The reply topic's records once every id of `wanted` has an answer (duplicates allowed: they count too, so
    reading goes on until a count that holds every id); fails naming the ids missing and what the dead-letter topic
    says of them."""
    deadline, count = time.monotonic() + timeout, len(wanted)
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):  # fewer records than `count` came in the time left
            records = read_all(bootstrap, topics["replies"], count, timeout=max(deadline - time.monotonic(), 1.0))
            if not (missing := wanted - ids_of(records)):
                return records
            count = len(records) + len(missing)
    missing = wanted - ids_of(read_all(bootstrap, topics["replies"], 0, timeout=20, idle_s=2))
    dead = {dict(r.headers)["id"].decode(): dict(r.headers).get("wharf-error") for r in read_all(
        bootstrap, topics["dead"], 0, timeout=20, idle_s=2)}  # fmt: skip
    raise AssertionError(
        f"{len(missing)} ids unanswered, e.g. {sorted(missing)[:5]}; their dead letters:"
        f" { {k: dead[k] for k in sorted(missing & set(dead))[:5]} }"
    )


def members(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in resource.get("status", {}).get("members", []) if m.get("pid")]


def consumer_pids(home: Path) -> list[int]:
    """The consumers a daemon of `home` started (they inherit its WHARF_HOME)."""
    found = subprocess.run(["pgrep", "-f", "wharf.eventing"], capture_output=True, text=True).stdout.split()
    pids = []
    for pid in map(int, found):
        with contextlib.suppress(OSError):
            if f"WHARF_HOME={home}\0" in open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"):
                pids.append(pid)
    return pids


class Running:
    """The module's daemon (replaced when a test restarts it) and what it serves."""

    def __init__(self, daemon: Daemon, model: Path) -> None:
        self.daemon, self.model = daemon, model


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, kafka_broker: Broker) -> Iterator[Running]:  # noqa: F811
    home = tmp_path_factory.mktemp("kafka") / "home"
    daemon = start_daemon(home, env=DAEMON_ENV)
    model = home / "models" / "iris.joblib"  # the daemon's models directory: the manifest policy allows it
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), model)
    state = Running(daemon, model)
    apply(daemon, iris("iris", model))
    wait_until(lambda: condition(service_of(daemon, "iris")).get("status") == "True", "iris ready")
    try:
        yield state
    finally:
        state.daemon.stop()
        for pid in consumer_pids(home):  # whatever a killed daemon left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_every_message_is_answered_through_a_killed_member_and_a_killed_daemon(
    running: Running,
    kafka_broker: Broker,  # noqa: F811
) -> None:
    daemon, n = running.daemon, 20_000
    topics = fresh_topics(kafka_broker, partitions=4)
    at_most_two = {"autoscaling.eventing.knative.dev/max-scale": "2"}  # two members share the 4 partitions
    apply(daemon, kafka_source("feed", kafka_broker.bootstrap, topics, ref("InferenceService", "iris"), **at_most_two))
    wait_until(lambda: condition(source_of(daemon, "feed")).get("status") == "True", "Ready")
    half = n // 2
    produce(kafka_broker.bootstrap, topics["requests"], [(b"k%d" % i, v2(), [("id", b"m%d" % i)]) for i in range(half)])

    # A member killed while it works is started again by the daemon.
    answering = wait_until(
        lambda: (s := source_of(daemon, "feed"))["status"].get("counters", {}).get("answered", 0) > 0 and s,
        "answering",
    )
    victim = members(answering)[0]
    os.kill(victim["pid"], signal.SIGKILL)
    restarted = wait_until(
        lambda: next(
            (m for m in members(source_of(daemon, "feed")) if m["id"] == victim["id"] and m["pid"] != victim["pid"]),
            None,
        ),
        "the member restarted",
    )
    assert restarted["restarts"] >= 1 and "status -9" in restarted.get("lastError", "")

    # The sink's replica killed: the gateway holds the calls until it is back, and the members retry.
    (replica,) = [r for r in service_of(daemon, "iris")["status"]["replicaStates"] if r["ready"]]
    os.kill(replica["pid"], signal.SIGKILL)

    # `wharf up` killed: its members keep consuming, and the next daemon (on the gateway's ports) adopts them.
    before = {m["id"]: m["pid"] for m in members(source_of(daemon, "feed"))}
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert set(consumer_pids(daemon.home)) >= set(before.values())
    daemon = running.daemon = start_daemon(daemon.home, (daemon.http_port, daemon.grpc_port), env=DAEMON_ENV)
    adopted = wait_until(lambda: (s := source_of(daemon, "feed"))["status"].get("consumers") and s, "members")
    assert {m["id"]: m["pid"] for m in members(adopted)}.items() & before.items()  # taken back as they ran

    produce(
        kafka_broker.bootstrap,
        topics["requests"],
        [(b"k%d" % i, v2(), [("id", b"m%d" % i)]) for i in range(half, n)],
    )
    answers = answers_for(kafka_broker.bootstrap, topics, {f"m{i}" for i in range(n)})  # none missing
    sample = answers[-1]
    doc = orjson.loads(sample.value)
    assert doc["outputs"][0]["data"] == [0] and sample.key == b"k" + dict(sample.headers)["id"][1:]

    done = wait_until(
        lambda: (s := source_of(daemon, "feed"))["status"].get("lag") == 0
        and {p["partition"] for p in s["status"]["partitions"]} == {0, 1, 2, 3}
        and s,
        "all committed",
    )
    assert done["status"]["sinkUri"] == "http://iris.default.example.com"

    # Malformed messages go to the dead-letter topic with the reason, and never block the partition.
    produce(
        kafka_broker.bootstrap,
        topics["requests"],
        [(b"bad", b"{not json", [("id", b"not-json")]), (b"ok", v2(), [("id", b"after")])],
    )
    dead = read_all(kafka_broker.bootstrap, topics["dead"], 1, timeout=60)
    assert ids_of(dead) == {"not-json"} and "not JSON" in dict(dead[0].headers)["wharf-error"].decode()
    assert answers_for(kafka_broker.bootstrap, topics, {"after"}, timeout=60)

    # wharf get / describe show the source, its members, lag and counters.
    table = daemon.wharf("get", "kafkasources").stdout
    assert table.split("\n")[0].split() == ["NAME", "SINK", "TOPICS", "MEMBERS", "LAG", "READY", "AGE"]
    assert "feed" in table and "InferenceService/iris" in table
    described = daemon.wharf("describe", "kafkasource", "feed").stdout
    assert "deadLettered" in described and "latencyMs" in described and "Events:" in described
    env = {**os.environ, "KUBECONFIG": str(daemon.home / "kubeconfig")}  # and kubectl, through discovery
    command = [program("kubectl", "kubectl"), "--cache-dir", str(daemon.home / "kubectl-cache"), "get", "kafkasources"]
    listed = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    assert listed.split("\n")[0].split() == ["NAME", "SINK", "TOPICS", "MEMBERS", "LAG", "READY", "AGE"]
    assert "InferenceService/iris" in listed


def test_a_service_scaled_to_zero_scales_up_when_messages_arrive(
    running: Running,
    kafka_broker: Broker,  # noqa: F811
) -> None:
    daemon = running.daemon
    topics = fresh_topics(kafka_broker, partitions=1)
    apply(
        daemon,
        iris("iris-zero", running.model, min_replicas=0),
        kafka_source("zero-feed", kafka_broker.bootstrap, topics, ref("InferenceService", "iris-zero")),
    )
    wait_until(lambda: service_of(daemon, "iris-zero")["status"].get("replicas") == 0, "at zero", timeout=60)
    wait_until(lambda: condition(source_of(daemon, "zero-feed")).get("status") == "True", "Ready")
    produce(kafka_broker.bootstrap, topics["requests"], [(None, v2(), [("id", b"z%d" % i)]) for i in range(50)])
    answers = read_all(kafka_broker.bootstrap, topics["replies"], 50, timeout=90)
    assert ids_of(answers) == {f"z{i}" for i in range(50)}  # answered: a replica came up for them


def test_an_inference_graph_as_the_sink(running: Running, kafka_broker: Broker) -> None:  # noqa: F811
    daemon = running.daemon
    topics = fresh_topics(kafka_broker, partitions=1)
    graph = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "iris-chain"},
        "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "iris"}]}}},
    }
    apply(
        daemon, graph, kafka_source("graph-feed", kafka_broker.bootstrap, topics, ref("InferenceGraph", "iris-chain"))
    )
    produce(kafka_broker.bootstrap, topics["requests"], [(None, v2(), [("id", b"g%d" % i)]) for i in range(20)])
    answers = read_all(kafka_broker.bootstrap, topics["replies"], 20, timeout=60)
    assert ids_of(answers) == {f"g{i}" for i in range(20)}
    assert orjson.loads(answers[0].value)["outputs"][0]["data"] == [0]
    assert source_of(daemon, "graph-feed")["status"]["sinkUri"] == "http://iris-chain.default.example.com"


def test_an_unknown_field_is_refused_and_a_missing_sink_or_broker_reported(running: Running) -> None:
    daemon = running.daemon
    topics = {"requests": "nowhere", "replies": "r", "dead": "d", "group": "g"}
    wrong = kafka_source("typo", "127.0.0.1:1", topics, ref("InferenceService", "iris"))
    wrong["spec"]["topic"] = "nowhere"
    refused = apply(daemon, wrong, status=400)
    assert "spec.topic" in refused["error"] and "did you mean topics" in refused["error"]

    apply(daemon, kafka_source("orphan", "127.0.0.1:1", topics, ref("InferenceService", "no-such-service")))
    reported = wait_until(lambda: (s := source_of(daemon, "orphan"))["status"].get("conditions") and s, "a status")
    ready = condition(reported)
    assert ready["status"] == "False" and ready["reason"] == "SinkNotFound"
    assert "InferenceService default/no-such-service not found" in ready["message"]
    assert reported["status"]["consumers"] == 0
    delete(daemon, "orphan")

    # A broker that does not answer: the members run, and the source says why it is not ready.
    apply(daemon, kafka_source("unreachable", "127.0.0.1:1", topics, ref("InferenceService", "iris")))
    down = wait_until(
        lambda: condition(s := source_of(daemon, "unreachable")).get("reason") == "BrokerUnavailable" and s,
        "BrokerUnavailable",
    )
    assert condition(down)["status"] == "False" and condition(down)["message"]
    assert down["status"]["consumers"] >= 1
    delete(daemon, "unreachable")
