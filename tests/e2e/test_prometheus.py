"""A real Prometheus (`wharf up --prometheus`, scraping every second) on a `wharf up` under load: its service
discovery lists every replica and process, every target is up, and every query of every shipped Grafana dashboard
returns data.

One daemon for the module, with its monitor: an iris service logging its payloads, with a canary taking half the
traffic, an outlier detector and a scheduled drift metric; a fairness metric over uploaded rows; and a service
that scales to zero and back (a cold start)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import Daemon, manifest, ready
from tests.e2e.test_monitor import (
    FAIRNESS,
    FEATURES,
    answer,
    eventually,
    infer,
    iris_artifacts,
    loans_upload,
    monitor_client,
    monitoring,
    service,
)
from tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DASHBOARDS = ROOT / "deploy" / "grafana"
LOAD_S = 5.0
WAIT_S = 60.0
FAST_WINDOW = {"autoscaling.knative.dev/window": "6s"}  # Knative's shortest stable window: to zero in seconds
# What Grafana puts for its built-in interval variables; the rate window holds the whole run.
INTERVALS = {"$__rate_interval": "2m", "$__interval": "5s", "$__range": "5m"}
IRIS_REVISIONS = {"iris-predictor-00001", "iris-predictor-00002"}


@dataclass
class Scraped:
    daemon: Daemon
    prometheus: httpx.Client
    viewer_token: str
    monitor_url: str


def _prometheus_url(daemon: Daemon) -> str:
    """Where `wharf up` says its Prometheus listens."""
    for line in daemon.log:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "wharf is up":
            return str(event["prometheus"])
    raise AssertionError("no 'wharf is up' line")


def _ask_who(daemon: Daemon) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    headers = {"host": "who.default.example.com"}
    answered = httpx.post(f"{daemon.gateway_url}/v2/models/who/infer", json=body, headers=headers, timeout=30)
    assert answered.status_code == 200, answered.text


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    root = tmp_path_factory.mktemp("prometheus")
    (root / "artifacts").mkdir()
    artifacts = iris_artifacts(root / "artifacts")
    shutil.copy(artifacts / "iris.joblib", artifacts / "iris-v2.joblib")  # a new storageUri: a canary revision
    settings = {
        "WHARF_PROMETHEUS": "true",
        "WHARF_PROMETHEUS_PORT": "0",
        "WHARF_PROMETHEUS_SCRAPE_INTERVAL_S": "1",
        "WHARF_USAGE_SAMPLE_S": "1",
    }
    daemon = monitoring(root / "home", settings)
    prometheus_pid = json.loads((daemon.home / "prometheus.json").read_text())["pid"]
    prometheus = httpx.Client(base_url=_prometheus_url(daemon), timeout=10)
    try:
        monitor = monitor_client(daemon)
        monitor_url = str(monitor.base_url).rstrip("/")
        daemon.wharf(
            "apply", "-f", "-", stdin=manifest("who", "a", predictor={"minReplicas": 0}, annotations=FAST_WINDOW)
        )
        daemon.wharf(
            "monitor", "upload", "iris", str(artifacts / "iris.csv"), "--tag", "TRAINING", "--output", "species",
            "--url", monitor_url,
        )  # fmt: skip
        daemon.wharf("apply", "-f", "-", stdin=service("iris", artifacts / "iris.joblib", monitor_url))
        daemon.wait("who", lambda s: s["status"]["replicas"] >= 1)
        _ask_who(daemon)  # its first replica served: idle from now on, it goes to zero
        daemon.wait("iris", ready)
        canary = service("iris", artifacts / "iris-v2.joblib", monitor_url)
        canary = canary.replace("  predictor:\n", "  predictor:\n    canaryTrafficPercent: 50\n")
        daemon.wharf("apply", "-f", "-", stdin=canary)
        daemon.wait(
            "iris",
            lambda s: ready(s)
            and len(s["status"]["components"]["predictor"]["traffic"]) == 2
            and sum(r["ready"] for r in s["status"]["replicaStates"]) == 2,
        )
        answer(monitor.post("/detectors/outliers", json={"modelId": "iris"}))

        # Load: the training rows, ten a request, split between stable and canary; then one far-out row.
        rows = pd.read_csv(artifacts / "iris.csv")[FEATURES].to_numpy()
        with httpx.Client(base_url=daemon.gateway_url, timeout=30) as gateway:
            until = time.monotonic() + LOAD_S
            while time.monotonic() < until:
                for batch in np.split(rows, 15):
                    infer(gateway, "iris", batch)
            infer(gateway, "iris", np.full((1, 4), 50.0))
        drift = {"modelId": "iris", "referenceTag": "TRAINING", "batchSize": 150, "fitColumns": FEATURES}
        answer(monitor.post("/metrics/drift/kstest/request", json=drift))
        assert monitor.post("/data/upload", json=loans_upload()).status_code == 200
        answer(monitor.post("/metrics/group/fairness/spd/request", json=FAIRNESS))

        daemon.wait("who", lambda s: s["status"]["replicas"] == 0, timeout=WAIT_S)
        _ask_who(daemon)  # a cold start
        eventually(lambda: _has_figures(monitor), "the monitor's drift, fairness and outlier figures")
        monitor.close()
        viewer = json.loads((daemon.home / "credentials.json").read_text())["viewer"]
        yield Scraped(daemon, prometheus, viewer, monitor_url)
    finally:
        prometheus.close()
        daemon.stop()
        _stopped(prometheus_pid)


def _has_figures(monitor: httpx.Client) -> bool:
    """Whether the monitor's /metrics has the scheduled drift and fairness gauges and an outlier found."""
    text = monitor.get("/metrics").text
    return all(f"{name}{{" in text for name in ("trustyai_kstest", "trustyai_spd", "wharf_monitor_detected_rows_total"))


def _stopped(pid: int) -> None:
    """Prometheus (by its pid) ended with the daemon; killed and reported if it did not."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"Prometheus (pid {pid}) still ran after the daemon stopped")


def _discovered(scraped: Scraped) -> list[dict[str, Any]]:
    answered = httpx.get(
        f"{scraped.daemon.control_url}/prometheus/targets",
        headers={"authorization": f"Bearer {scraped.viewer_token}"},
        timeout=10,
    )
    assert answered.status_code == 200 and answered.headers["content-type"] == "application/json", answered.text
    return answered.json()


def test_discovery_lists_every_replica_the_gateway_the_control_plane_and_the_monitor(scraped: Scraped) -> None:
    daemon = scraped.daemon
    assert httpx.get(f"{daemon.control_url}/prometheus/targets", timeout=10).status_code == 401  # a token is needed
    groups = _discovered(scraped)
    processes = {g["labels"]["job"]: g["targets"] for g in groups if g["labels"]["job"] != "wharf-replica"}
    assert processes == {
        "wharf-gateway": [f"127.0.0.1:{daemon.http_port}"],
        "wharf-control": [f"127.0.0.1:{daemon.control_port}"],
        "wharf-monitor": [scraped.monitor_url.removeprefix("http://")],
    }
    replicas = {g["labels"]["replica"]: g for g in groups if g["labels"]["job"] == "wharf-replica"}
    states = daemon.isvc("iris")["status"]["replicaStates"]
    assert {s["revision"] for s in states} == IRIS_REVISIONS
    for state in states:
        group = replicas[state["id"]]
        assert group == {
            "targets": [f"127.0.0.1:{state['http_port']}"],
            "labels": {
                "__metrics_path__": "/metrics",
                "job": "wharf-replica",
                "namespace": "default",
                "service": "iris",
                "component": "predictor",
                "revision": state["revision"],
                "replica": state["id"],
            },
        }
    assert {g["labels"]["service"] for g in replicas.values()} <= {"iris", "who"}


def test_prometheus_scrapes_every_discovered_target(scraped: Scraped) -> None:
    def all_up() -> dict[str, str] | None:
        wanted = {
            f"http://{g['targets'][0]}/metrics"
            for g in _discovered(scraped)
            if g["labels"].get("service") != "who"  # it may go to zero meanwhile
        }
        active = scraped.prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        health = {t["scrapeUrl"]: t["health"] for t in active}
        return health if all(health.get(url) == "up" for url in wanted) else None

    health = eventually(all_up, "every discovered target scraped and up", timeout=WAIT_S)
    jobs = {t["labels"]["job"] for t in scraped.prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]}
    assert {"wharf-replica", "wharf-gateway", "wharf-control", "wharf-monitor"} <= jobs, health


def _query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answered = prometheus.get("/api/v1/query", params={"query": expr})
    assert answered.status_code == 200, f"{expr}\n{answered.text}"
    return answered.json()["data"]["result"]


def _label_values(prometheus: httpx.Client, query: str) -> list[str]:
    """What Grafana's `label_values(SELECTOR, LABEL)` finds."""
    matched = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert matched, query
    selector, label = matched.groups()
    answered = prometheus.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
    assert answered.status_code == 200, f"{query}\n{answered.text}"
    return answered.json()["data"]


def _substituted(text: str, values: dict[str, str]) -> str:
    for name, value in {**INTERVALS, **{f"${name}": value for name, value in values.items()}}.items():
        text = text.replace(name, value)
    assert "$" not in text, f"a variable the test does not know: {text}"
    return text


def _selections(prometheus: httpx.Client, dashboard: dict[str, Any], chosen: dict[str, str]) -> dict[str, str]:
    """The dashboard's variables as Grafana would fill them: `chosen` values (each must be among those its query
    finds), All (every value found, as a regex) for the others."""
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = _label_values(prometheus, _substituted(variable["query"], values))
        name = variable["name"]
        if name in chosen:
            assert chosen[name] in found, (name, found)
            values[name] = chosen[name]
        else:
            assert variable["includeAll"] and found, (name, found)
            values[name] = f"({'|'.join(found)})"
    return values


def _expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query expression) of every target of every panel, rows' nested panels included."""
    found = []
    for panel in dashboard["panels"]:
        for each in [panel, *panel.get("panels", [])]:
            found += [(each["title"], target["expr"]) for target in each.get("targets", [])]
    return found


def test_every_query_of_every_dashboard_returns_data(scraped: Scraped) -> None:
    # The service dashboard for the canaried service, and for the one that scaled from zero (its cold starts).
    choices = {
        "overview.json": [{}],
        "service.json": [{"namespace": "default", "service": "iris"}, {"namespace": "default", "service": "who"}],
        "monitoring.json": [{}],
    }
    assert sorted(path.name for path in DASHBOARDS.glob("*.json")) == sorted(choices)
    queries: list[tuple[str, str, list[str]]] = []  # (dashboard, panel title, the expression as each choice fills it)
    for name, chosen in choices.items():
        dashboard = json.loads((DASHBOARDS / name).read_text())
        filled = [_selections(scraped.prometheus, dashboard, each) for each in chosen]
        for title, expr in _expressions(dashboard):
            queries.append((name, title, [_substituted(expr, values) for values in filled]))
    assert len(queries) >= 40

    def empty() -> list[str]:
        return [
            f"{name} / {title}: {exprs[0]}"
            for name, title, exprs in queries
            if not any(_query(scraped.prometheus, expr) for expr in exprs)
        ]

    deadline = time.monotonic() + WAIT_S
    while (missing := empty()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing, "queries without data:\n" + "\n".join(missing)
