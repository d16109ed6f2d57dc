"""`wharf monitor` as a real process: CloudEvents from the SDK, `wharf monitor upload`, names, labels, a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.processes import start
from wharf.logger.events import REQUEST_TYPE, RESPONSE_TYPE

START_TIMEOUT_S = 60.0
NAMES = {
    "input-0-0": "sepal_length",
    "input-0-1": "sepal_width",
    "input-0-2": "petal_length",
    "input-0-3": "petal_width",
}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


class Monitor:
    """A `wharf monitor` process on a free port, with its WHARF_HOME."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "WHARF_HOME": str(home), "WHARF_MONITOR_FLUSH_INTERVAL_S": "0.05"}
        command = [sys.executable, "-m", "wharf.cli", "monitor", "--port", "0"]
        self.proc, event, self.log = start(command, self.env, "monitor is up", START_TIMEOUT_S)
        self.url = f"http://127.0.0.1:{event['port']}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def info(self, observations: int) -> dict:
        """GET /info once `observations` logged rows of iris are written (they are written in batches)."""
        deadline = time.monotonic() + 10
        while True:
            info = self.client.get("/info").json()
            if info.get("iris", {}).get("data", {}).get("observations") == observations or time.monotonic() > deadline:
                return info["iris"]
            time.sleep(0.05)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def monitor(home: Path) -> Iterator[Monitor]:
    running = Monitor(home)
    yield running
    running.stop()


def post_event(
    client: httpx.Client, kind: str, request_id: str, body: dict, status: int | None = None
) -> httpx.Response:
    """A payload log event, made and sent as KServe's logger does (binary mode), with the CloudEvents SDK."""
    attributes = {
        "type": kind,
        "source": "http://iris.default.example.com",
        "id": request_id,
        "inferenceservicename": "iris",
        "namespace": "default",
        "component": "predictor",
        "endpoint": "iris-predictor-00001",
    }
    if status is not None:
        attributes["statuscode"] = str(status)
    headers, data = to_binary(CloudEvent(attributes, body))
    return client.post("/", headers=headers, content=data)


def test_events_uploads_names_labels_and_a_restart(monitor: Monitor, home: Path, tmp_path: Path) -> None:
    client = monitor.client
    for i, row in enumerate(ROWS):
        assert post_event(client, REQUEST_TYPE, f"r{i}", {"instances": [row]}).status_code == 202
        assert post_event(client, RESPONSE_TYPE, f"r{i}", {"predictions": [i]}, 200).status_code == 202
    assert post_event(client, RESPONSE_TYPE, "r3", {"predictions": [0, 1]}, 200).status_code == 202  # answer first
    assert post_event(client, REQUEST_TYPE, "r3", {"instances": ROWS[:2]}).status_code == 202
    assert post_event(client, REQUEST_TYPE, "r4", {"instances": [[1.0, 2.0]]}).status_code == 202  # decodes: waits
    refused = post_event(client, RESPONSE_TYPE, "r4", {"predictions": [0]}, 200)
    assert refused.status_code == 400 and "do not fit them" in refused.json()["error"]
    malformed = client.post("/", headers={"ce-specversion": "1.0", "ce-id": "x", "ce-source": "s", "ce-type": "t"})
    assert malformed.status_code == 400 and "unknown event type 't'" in malformed.json()["error"]
    info = monitor.info(observations=5)
    assert list(info["data"]["inputSchema"]["items"]) == list(NAMES) and info["data"]["observations"] == 5

    renamed = client.post(
        "/info/names", json={"modelId": "iris", "inputMapping": NAMES, "outputMapping": {"output-0": "species"}}
    )
    assert renamed.status_code == 200, renamed.text
    training = pd.DataFrame([[*row, i] for i, row in enumerate(ROWS * 10)], columns=[*NAMES.values(), "species"])
    training.to_csv(tmp_path / "iris.csv", index=False)
    command = [
        sys.executable,
        "-m",
        "wharf.cli",
        "monitor",
        "upload",
        "iris",
        "--tag",
        "TRAINING",
        str(tmp_path / "iris.csv"),
    ]
    uploaded = subprocess.run(
        [*command, "--output", "species", "--url", monitor.url],
        env=monitor.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert uploaded.returncode == 0, uploaded.stderr
    assert "30 rows of iris.csv uploaded to iris, tagged TRAINING" in uploaded.stdout
    wrong = subprocess.run(
        [*command, "--url", monitor.url], env=monitor.env, capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 2 and "unexpected: ['species']" in wrong.stderr

    labels = client.post("/data/labels", json={"modelId": "iris", "requestId": "r3", "labels": {"species": [0, 2]}})
    assert labels.status_code == 200, labels.text
    before = monitor.info(observations=5)
    assert before["tags"] == {"TRAINING": 30} and before["labelled"] == 2
    assert before["data"]["outputSchema"]["nameMapping"] == {"output-0": "species"}
    metrics = client.get("/metrics").text
    assert 'wharf_monitor_events_refused_total{reason="event"} 1.0' in metrics
    assert 'wharf_monitor_events_refused_total{reason="columns"} 1.0' in metrics

    monitor.stop()
    assert monitor.proc.returncode == 0
    again = Monitor(home)
    try:
        assert again.info(observations=5) == before
        ids = again.client.get("/info/inference/ids/iris").json()
        assert [row["id"] for row in ids] == ["r0", "r1", "r2", "r3", "r3"]
    finally:
        again.stop()
