"""How `wharf get` and `wharf describe` print: columns per kind, ages as kubectl writes them, event tables."""

from __future__ import annotations

from wharf.cli.tables import Table, age, columns, events_table

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _service(name: str, ready: str, message: str = "", **status: object) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2023-11-14T22:13:00Z"},
        "status": {
            "url": f"http://{name}.default.example.com",
            "conditions": [{"type": "Ready", "status": ready, "message": message}],
            **status,
        },
    }


def test_ages_read_as_kubectl_writes_them() -> None:
    assert [age(t, NOW) for t in ("2023-11-14T22:13:15Z", "2023-11-14T22:10:00Z", "2023-11-14T21:13:20Z")] == [
        "5s",
        "3m20s",
        "60m",
    ]
    assert age("2023-11-12T20:13:20Z", NOW) == "2d2h" and age("not a time", NOW) == ""


def test_a_watch_keeps_the_columns_of_its_first_rows() -> None:
    table = Table(columns("InferenceService", wide=False, namespaces=False))
    first = table.render([_service("who", "False")]).splitlines()
    assert first[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST", "REPLICAS", "AGE"]
    later = table.render([_service("who", "True")], header=False)
    assert later.index("True") == first[1].index("False")


def test_wide_columns_say_why_a_service_is_not_ready() -> None:
    conditions = [
        {
            "type": "PredictorReady",
            "status": "False",
            "message": "exited before serving (status 2):\nOSError: no weights",
        },
        {"type": "Ready", "status": "False", "message": "waiting for a ready replica of who-predictor-00001"},
    ]
    service = _service("who", "False")
    service["status"]["conditions"] = conditions
    row = Table(columns("InferenceService", wide=True, namespaces=True)).render([service]).splitlines()[1]
    assert row.split()[:2] == ["default", "who"] and row.endswith(
        "exited before serving (status 2): ... OSError: no weights"
    )
    graph = Table(columns("InferenceGraph", wide=False, namespaces=False)).render([_service("chain", "True")])
    assert graph.splitlines()[0].split() == ["NAME", "URL", "READY", "AGE"]


def test_a_wide_monitor_column_sums_up_what_the_model_monitor_says() -> None:
    table = Table(columns("InferenceService", wide=True, namespaces=False))
    header = [name for name, _ in table.columns]
    assert header[-2:] == ["MONITOR", "MESSAGE"] and "MONITOR" not in [
        name for name, _ in columns("InferenceService", wide=False, namespaces=False)
    ]
    monitor = header.index("MONITOR")
    detectors = {"outliers": {"inspected": 400, "detected": 10, "rate": 0.025}}
    said = [
        {},  # not monitored
        {"rows": 300, "outsideBounds": []},
        {"rows": 300, "outsideBounds": ["kstest", "spd"]},
        {"rows": 400, "outsideBounds": [], **detectors, "adversarial": {"inspected": 50, "detected": 0, "rate": 0.0}},
        {"rows": 400, "outsideBounds": ["meanshift"], "adversarial": {"inspected": 3, "detected": 1, "rate": 0.3333}},
    ]
    services = [_service("who", "True", **({"monitoring": s} if s else {})) for s in said]
    assert [table.row(service)[monitor] for service in services] == [
        "",
        "ok",
        "outside: kstest,spd",
        "outliers 2.5%",
        "outside: meanshift; adversarial 33.3%",
    ]


def test_events_list_counts_and_the_further_lines_of_a_message() -> None:
    assert events_table([]) == "Events:  <none>"
    events = [
        {
            "type": "Normal",
            "reason": "Ready",
            "message": "ready",
            "count": 1,
            "firstTimestamp": "2023-11-14T22:13:10Z",
            "lastTimestamp": "2023-11-14T22:13:10Z",
        },
        {
            "type": "Warning",
            "reason": "ReplicaRestarted",
            "message": "replica a restarted:\nboom",
            "count": 3,
            "firstTimestamp": "2023-11-14T22:03:20Z",
            "lastTimestamp": "2023-11-14T22:13:00Z",
        },
    ]
    assert events_table(events, NOW).splitlines() == [
        "Events:",
        "  TYPE      REASON             AGE                 MESSAGE",
        "  Normal    Ready              10s                 ready",
        "  Warning   ReplicaRestarted   20s (x3 over 10m)   replica a restarted:",
        "                                                   boom",
    ]
