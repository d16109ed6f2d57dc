"""A KafkaSource as `wharf get kafkasources` and `kubectl get kafkasources` show it, and as discovery serves it."""

from __future__ import annotations

from typing import Any

from wharf.cli.tables import Table, columns
from wharf.control.kube import discovery
from wharf.control.kube.table import table

SOURCE: dict[str, Any] = {
    "apiVersion": "sources.knative.dev/v1beta1",
    "kind": "KafkaSource",
    "metadata": {"name": "feed", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {
        "bootstrapServers": ["127.0.0.1:9092"],
        "topics": ["a", "b"],
        "consumerGroup": "g",
        "sink": {"ref": {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "iris"}},
    },
    "status": {
        "consumers": 2,
        "lag": 17,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "BrokerUnavailable", "message": "no broker answers"}
        ],
    },
}


def test_wharf_get_shows_sink_topics_members_lag_and_readiness() -> None:
    shown = Table(columns("KafkaSource", wide=True, namespaces=False)).render([SOURCE])
    header, row = (line.split() for line in shown.split("\n"))
    assert header == ["NAME", "SINK", "TOPICS", "MEMBERS", "LAG", "READY", "AGE", "GROUP", "MESSAGE"]
    assert row[:6] == ["feed", "InferenceService/iris", "a,b", "2", "17", "False"]
    assert row[7:] == ["g", "no", "broker", "answers"]


def test_kubectl_gets_a_table_and_discovers_the_resource() -> None:
    answer = table("KafkaSource", [SOURCE], now=0)
    names = [c["name"] for c in answer["columnDefinitions"]]
    assert names == ["Name", "Sink", "Topics", "Members", "Lag", "Ready", "Age", "Message"]
    assert answer["rows"][0]["cells"][:6] == ["feed", "InferenceService/iris", "a,b", 2, 17, "False"]
    (served,) = discovery.resources_of("sources.knative.dev", "v1beta1")
    assert (served.plural, served.kind, served.status) == ("kafkasources", "KafkaSource", True)
