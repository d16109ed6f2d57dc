"""The BatchJob resource on a real `wharf up`: applied, run as `wharf batch`, watched to Succeeded or Failed with its
progress, listed by `wharf get batchjobs`, and stopped when deleted. One daemon for the module."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.e2e.conftest import Daemon, start_daemon
from tests.processes import ROOT

pytestmark = pytest.mark.slow

IRIS = ROOT / "examples/iris/model.joblib"
SLOW_ROWS = 40  # RowSum sleeps 0.5 s a row, at most 10 s a call: a job of several calls, deleted while it runs


def job(name: str, model: str, input: Path, output: Path, **spec: Any) -> str:
    document = {
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"model": model, "input": str(input), "output": str(output), "workers": 1, **spec},
    }
    return json.dumps(document)


def holding(batch_job: dict[str, Any]) -> str | None:
    conditions = batch_job.get("status", {}).get("conditions", [])
    return next((c["type"] for c in conditions if c["status"] == "True"), None)


def wait_for(daemon: Daemon, name: str, states: set[str], timeout: float = 30.0) -> dict[str, Any]:
    return daemon.wait(name, lambda found: holding(found) in states, timeout, kind="bj")


def batch_pids(home: Path) -> list[int]:
    """The `wharf batch` processes the daemon of `home` runs."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if b"batch" in command and f"WHARF_HOME={home}".encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("batch") / "home", env={"SLEEP_PER_ROW_S": "0.5"})
    try:
        yield running
    finally:
        running.stop()


def test_a_batch_job_scores_its_input_and_shows_its_progress(daemon: Daemon, tmp_path: Path) -> None:
    features = load_iris().data[::5]  # 30 rows
    with open(tmp_path / "iris.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "c", "d"])
        writer.writerows(features.tolist())
    output = tmp_path / "scores"
    daemon.wharf("apply", "-f", "-", stdin=job("iris-scores", str(IRIS), tmp_path / "iris.csv", output, chunkRows=10))

    done = wait_for(daemon, "iris-scores", {"Succeeded", "Failed"})
    assert holding(done) == "Succeeded", done
    assert (done["status"]["rowsDone"], done["status"]["rowsTotal"], done["status"]["errors"]) == (30, 30, 0)
    rows = [row for part in sorted(output.glob("part-*.csv")) for row in csv.DictReader(part.open())]
    expected = joblib.load(IRIS).predict(features)
    assert [int(r["id"]) for r in rows] == list(range(30))
    assert np.array_equal([int(r["predict"]) for r in rows], expected)

    listed = daemon.wharf("get", "batchjobs").stdout.splitlines()
    assert listed[0].split() == ["NAME", "STATUS", "ROWS", "ERRORS", "AGE"]
    assert listed[1].split()[:4] == ["iris-scores", "Succeeded", "30/30", "0"]


def test_a_job_whose_model_does_not_load_fails_with_its_error(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b,c,d\n1,2,3,4\n")
    outside = daemon.wharf(
        "apply", "-f", "-", stdin=job("x", str(tmp_path / "m.joblib"), tmp_path, tmp_path / "o"), check=False
    )
    assert outside.returncode != 0 and "outside the directories models load from" in outside.stderr  # the policy's
    missing = ROOT / "examples/iris/no-such-model.joblib"
    daemon.wharf("apply", "-f", "-", stdin=job("no-model", str(missing), tmp_path / "in.csv", tmp_path / "out"))

    failed = wait_for(daemon, "no-model", {"Succeeded", "Failed"})
    assert holding(failed) == "Failed", failed
    message = next(c["message"] for c in failed["status"]["conditions"] if c["type"] == "Failed")
    assert message.startswith("wharf batch exited with status") and "no-such-model" in message, message
    wide = daemon.wharf("get", "bj", "no-model", "-o", "wide").stdout
    assert "Failed" in wide and "no-such-model" in wide


def test_deleting_a_running_job_stops_it(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("x,y\n" + "1,2\n" * SLOW_ROWS)
    slow = job("slow", "wharf_test_models:RowSum", tmp_path / "in.csv", tmp_path / "out", batchSize=20)
    daemon.wharf("apply", "-f", "-", stdin=slow)
    wait_for(daemon, "slow", {"Running"})
    deadline = time.monotonic() + 10
    while not batch_pids(daemon.home):
        assert time.monotonic() < deadline, "no wharf batch process"
        time.sleep(0.1)

    daemon.wharf("delete", "bj", "slow")
    deadline = time.monotonic() + 15
    while batch_pids(daemon.home):
        assert time.monotonic() < deadline, f"wharf batch still runs: {batch_pids(daemon.home)}"
        time.sleep(0.2)
    assert "slow" not in daemon.wharf("get", "batchjobs", check=False).stdout
