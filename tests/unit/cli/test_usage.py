"""How `wharf cost` and `wharf top` print: the report's table and its recommendations with their numbers, the live
view's revisions and replicas, and the targets they take."""

from __future__ import annotations

from typer.testing import CliRunner

from wharf.cli.main import app
from wharf.cli.usage import _top_tables, cost_text
from wharf.telemetry.cost import Bucket, RevisionKey, Scale, Usage, report

IDLE = RevisionKey("default", "idle", "predictor", "idle-predictor-00001")
BUSY = RevisionKey("default", "busy", "predictor", "busy-predictor-00001")


def test_the_cost_table_has_a_row_per_revision_then_each_recommendation_with_its_numbers() -> None:
    idle = Usage(seconds=120, replica_seconds=360, idle_replica_seconds=360, memory_byte_seconds=360 * 2**26)
    busy = Usage(
        seconds=120,
        replica_seconds=120,
        requests=600,
        concurrency_seconds=960,
        waiting_seconds=840,
        waiting_max=7,
        queueing_seconds=120,
        at_max_seconds=120,
        queueing_at_max_seconds=120,
        replicas_max=1,
    )
    document = report(
        [
            Bucket(0.0, IDLE, Scale(min_replicas=3), idle),
            Bucket(0.0, BUSY, Scale(target=0.7, min_replicas=1, max_replicas=1, container_concurrency=1), busy),
        ]
    ).document()
    text = cost_text(document, "1h", namespaces=False)
    lines = text.splitlines()
    assert lines[0] == "Usage in the last 1h:"
    assert lines[1].split()[:4] == ["SERVICE", "REVISION", "REPLICAS", "REPLICA-SECONDS"]
    assert lines[2].split() == [
        "busy", "busy-predictor-00001", "1/1", "120", "0%", "0", "0Mi", "600", "8/0.7", "7/7", "0%", "0",
        "under-scaled",
    ]  # fmt: skip
    assert lines[3].split()[:7] == ["idle", "idle-predictor-00001", "3/0", "360", "100%", "0", "64Mi"]
    assert lines[3].endswith("over-scaled")
    assert lines[5] == "Recommendations:"
    assert lines[6].startswith("  under-scaled  default/busy (predictor busy-predictor-00001): held at maxReplicas 1")
    assert lines[7].startswith("  over-scaled  default/idle (predictor idle-predictor-00001): minReplicas 3 kept 3")
    assert "NAMESPACE" in cost_text(document, "1h", namespaces=True).splitlines()[1]
    assert "Calls" not in text


def test_the_service_graphs_edges_follow_the_recommendations_when_the_report_has_them() -> None:
    edge = {"source": "default/chain", "sourceComponent": None, "destination": "default/idle"}
    edge |= {"component": "predictor", "revision": "idle-predictor-00001", "requests": 20, "errors": 1}
    edge |= {"requestsPerSecond": 0.33, "errorRatio": 0.05, "p50Ms": 4.2, "p99Ms": 11.0}
    idle = Usage(seconds=120, replica_seconds=120, requests=20)
    document = report([Bucket(0.0, IDLE, Scale(min_replicas=1), idle)], edges=[edge]).document()
    lines = cost_text(document, "1h", namespaces=False).splitlines()
    calls = lines.index("Calls (the service graph's edges, over the gateway's window):")
    assert lines[calls + 1].split() == ["SOURCE", "DESTINATION", "REVISION", "REQUESTS", "RPS", "ERRORS", "P99(ms)"]
    assert lines[calls + 2].split() == [
        "default/chain", "default/idle/predictor", "idle-predictor-00001", "20", "0.33", "5%", "11",
    ]  # fmt: skip
    assert cost_text(report([]).document(), "30m", namespaces=False) == "No usage recorded in the last 30m."


def test_top_shows_each_revision_then_each_replica() -> None:
    replica = {"replica": "who-1", "pid": 42, "ready": True, "restarts": 0}
    replica |= {"cpuCores": 0.012, "cpuSeconds": 3.5, "memoryBytes": 90 * 2**20}
    item = {
        "namespace": "default", "service": "who", "component": "predictor", "revision": "who-predictor-00001",
        "replicas": 1, "ready": 1, "desired": 1, "inFlight": 2, "queued": 0, "waiting": 1, "concurrency": 2,
        "requestsPerSecond": 4.0, "panicking": False, "concurrencyTarget": 0.7, "cpuCores": 0.012,
        "cpuSeconds": 3.5, "memoryBytes": 90 * 2**20, "replicaStates": [replica],
    }  # fmt: skip
    revisions, replicas = _top_tables([item], namespaces=False, namespace="default").split("\n\n")
    assert revisions.splitlines()[1].split() == [
        "who", "who-predictor-00001", "1/1", "1", "2", "1", "2/0.7", "4", "no", "12m", "3.5", "90Mi",
    ]  # fmt: skip
    assert replicas.splitlines()[1].split() == ["who-1", "who-predictor-00001", "42", "yes", "0", "12m", "3.5", "90Mi"]
    assert _top_tables([], namespaces=False, namespace="prod") == "No revisions running in namespace prod."


def test_top_and_cost_take_an_inference_service_and_nothing_else() -> None:
    runner = CliRunner()
    for command in ("top", "cost"):
        refused = runner.invoke(app, [command, "ig/flow"])
        assert refused.exit_code == 2 and "only InferenceServices" in refused.output
        refused = runner.invoke(app, [command, "isvc/who", "-A"])
        assert refused.exit_code == 2 and "-A covers every namespace" in refused.output
    refused = runner.invoke(app, ["cost", "--since", "soon"])
    assert refused.exit_code == 2 and "is not a duration" in refused.output
