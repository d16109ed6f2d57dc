"""Every verb of the `wharf` CLI end to end against a real `wharf up`: apply (files, directories, standard input,
--wait), get (tables, -o wide, -o jsonpath, -A, -w), describe (events), wait, logs (-f), delete (-f)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Daemon, graph, manifest, ready, who_answers
from tests.processes import ROOT

BROKEN = manifest("broken", "a").replace("wharf_test_models:WhoAmI", "wharf_test_models:FailsToLoad")
GRAPH = graph("chain", "Sequence", {"serviceName": "who"})


class Lines:
    """A `wharf` command running in the background, its output read line by line as it comes."""

    def __init__(self, daemon: Daemon, *args: str) -> None:
        env = {**os.environ, "WHARF_CONTROL_URL": daemon.control_url, "WHARF_HOME": str(daemon.home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wharf.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def until(self, wanted: str, timeout: float = 30.0) -> str:
        """The first line (from here on) that holds `wanted`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if wanted in line:
                return line
        raise AssertionError(f"no line with {wanted!r} within {timeout} s:\n{''.join(self.seen)}")

    def interrupt(self) -> int:
        """Ctrl-C, as a user stops it."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(10)


@contextmanager
def running(daemon: Daemon, *args: str) -> Iterator[Lines]:
    command = Lines(daemon, *args)
    try:
        yield command
    finally:
        if command.proc.poll() is None:
            command.proc.kill()
            command.proc.wait(10)


def test_get_watch_sees_a_service_become_ready(daemon: Daemon) -> None:
    with running(daemon, "get", "isvc", "-w") as watch, daemon.control() as control:
        with control.stream(
            "GET", "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices", params={"watch": "true"}
        ) as api_watch:
            daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
            header = watch.until("NAME")
            assert header.split()[:3] == ["NAME", "URL", "READY"]
            assert "True" not in watch.until("who").split()  # created (its status comes with the next changes)
            ready_row = watch.until("True")
            assert ready_row.split()[:3] == ["who", "http://who.default.example.com", "True"]
            events = []
            for line in api_watch.iter_lines():
                event = json.loads(line)
                events.append(event["type"])
                if ready(event["object"]):
                    break
        assert events[0] == "ADDED" and set(events[1:]) == {"MODIFIED"}
        assert watch.interrupt() == 0


def test_apply_a_directory_then_list_describe_and_delete_it(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "who.yaml").write_text(manifest("who", "a"))
    (tmp_path / "other.json").write_text(
        json.dumps({**yaml.safe_load(manifest("other", "b")), "metadata": {"name": "other", "namespace": "team"}})
    )
    (tmp_path / "graph.yml").write_text(GRAPH)
    (tmp_path / "README.md").write_text("not a manifest")
    applied = daemon.wharf("apply", "-f", str(tmp_path), "--wait", "--timeout", "60s").stdout
    assert "inferencegraph/chain created" in applied and "inferenceservice/who created" in applied
    assert "inferenceservice/other created" in applied
    assert "inferenceservice/who: ready at http://who.default.example.com" in applied
    assert "inferencegraph/chain: ready at http://chain.default.example.com" in applied

    table = daemon.wharf("get", "isvc").stdout.splitlines()
    assert table[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST", "REPLICAS", "AGE"]
    assert [row.split()[:5] for row in table[1:]] == [["who", "http://who.default.example.com", "True", "100", "1"]]
    everywhere = daemon.wharf("get", "isvc", "-A").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [row.split()[:2] for row in everywhere[1:]] == [["default", "who"], ["team", "other"]]
    wide = daemon.wharf("get", "isvc/who", "-o", "wide").stdout.splitlines()
    columns = ["PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "COMPONENTS", "MONITOR", "MESSAGE"]
    assert wide[0].split()[-5:] == columns
    assert "who-predictor-00001" in wide[1] and "predictor" in wide[1].split()
    graphs = daemon.wharf("get", "ig").stdout.splitlines()
    assert graphs[0].split() == ["NAME", "URL", "READY", "AGE"]
    assert graphs[1].split()[:3] == ["chain", "http://chain.default.example.com", "True"]
    names = daemon.wharf("get", "isvc", "-A", "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert names.strip() == "who other"
    url = daemon.wharf("get", "isvc", "who", "-o", "jsonpath={.status.components.predictor.traffic[0].percent}")
    assert url.stdout.strip() == "100"

    refused = daemon.wharf("get", "isvc", "-o", "jsonpath={.items[", check=False)
    assert refused.returncode == 2 and "unclosed" in refused.stderr
    missing = daemon.wharf("describe", "isvc/nope", check=False)
    assert missing.returncode == 1 and "InferenceService default/nope not found" in missing.stderr

    deleted = daemon.wharf("delete", "-f", str(tmp_path / "other.json"), "-f", str(tmp_path / "graph.yml")).stdout
    assert deleted.splitlines() == ["inferenceservice/other deleted", "inferencegraph/chain deleted"]
    again = daemon.wharf("delete", "-f", str(tmp_path / "graph.yml"), check=False)
    assert again.returncode == 1 and "InferenceGraph default/chain not found" in again.stderr
    assert daemon.wharf("delete", "-f", str(tmp_path / "graph.yml"), "--ignore-not-found").stdout == ""
    assert [r.split()[1] for r in daemon.wharf("get", "isvc", "-A").stdout.splitlines()[1:]] == ["who"]


def test_describe_tells_the_rollout_story(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wharf("wait", "--for=condition=Ready", "isvc/who", "--timeout", "60s")
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "b", canary=50))
    daemon.wait("who", lambda s: len(s["status"]["components"]["predictor"]["traffic"]) == 2)
    assert daemon.wharf("rollout", "rollback", "who").stdout == "inferenceservice/who rolled back\n"
    daemon.wait("who", lambda s: len(s["status"]["components"]["predictor"]["traffic"]) == 1)
    events = daemon.wharf("describe", "isvc", "who").stdout.split("\nEvents:\n")[1]
    reasons = [line.split()[1] for line in events.splitlines()[1:] if line.startswith("  ")]
    for reason in ("RevisionCreated", "TrafficMoved", "ReplicaCreated", "ReplicaReady", "Ready", "RolledBack"):
        assert reason in reasons, events
    assert "predictor revision who-predictor-00002 created" in events
    assert "predictor traffic: who-predictor-00001 50%, who-predictor-00002 50%" in events
    assert "predictor revision who-predictor-00002 rolled back: rolled back by `wharf rollout rollback`" in events
    with daemon.control() as control:
        listed = control.get("/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/who/events")
    assert listed.status_code == 200 and listed.json()["items"][0]["involvedObject"]["name"] == "who"


@pytest.mark.timeout(240)
def test_logs_follow_a_replica_through_its_restart(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    [replica] = daemon.wait("who", ready)["status"]["replicaStates"]
    tail = daemon.wharf("logs", "isvc/who", "--tail", "1").stdout
    assert tail.count("\n") == 1 and '"event":"serving"' in tail
    everything = daemon.wharf("logs", "who").stdout
    assert everything.count("\n") > 1 and everything.endswith(tail)
    path = daemon.home / "logs" / replica["revision"] / f"{replica['id']}.log"
    assert path.read_text() == everything  # where the README says they are

    with running(daemon, "logs", "isvc/who", "-f", "--tail", "1") as follow:
        # Its last line shown: the stream is open at the file's end. (A fixed sleep instead lost the race on a loaded
        # machine: the command connected after the restart had written its line, and `--tail 0` began after it.)
        assert follow.until('"event":"serving"') == tail
        os.kill(replica["pid"], signal.SIGKILL)
        restarted = follow.until('"event":"serving"', timeout=60)  # the new process, in the same file
        assert json.loads(restarted)["http_port"] != replica["http_port"]
        assert follow.interrupt() == 0
    [state] = daemon.wait("who", lambda s: ready(s) and s["status"]["replicaStates"][0]["restarts"] == 1)["status"][
        "replicaStates"
    ]
    assert state["last_error"] == "exited (status -9)"  # not the start-up lines of the process that was killed
    events = daemon.wharf("describe", "isvc/who").stdout
    assert f"replica {replica['id']} restarted (1 in all) after: exited (status -9)" in events
    assert set(who_answers(daemon, "who.default.example.com", 3)) == {"a"}

    for refused, message in (
        (
            ("logs", "isvc/who", "--revision", "7"),
            "has no predictor revision '7'; its predictor revisions: who-predictor-00001",
        ),
        (("logs", "isvc/who", "-c", "transformer"), "InferenceService default/who has no transformer"),
        (("logs", "ig/chain"), "logs are an InferenceService's"),
    ):
        run = daemon.wharf(*refused, check=False)
        assert run.returncode in (1, 2) and message in run.stderr.replace("\n", " "), run.stderr
    assert daemon.wharf("logs", "isvc/who", "--revision", "1", "--tail", "1").stdout.count("\n") == 1


def test_wait_and_apply_wait_say_why_a_service_is_not_ready(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # usage errors on one line
    path = daemon.home.parent / "broken.yaml"
    path.write_text(BROKEN)
    started = time.monotonic()
    with running(daemon, "apply", "-f", str(path), "--wait", "--timeout", "8s") as apply:
        apply.until("inferenceservice/broken created")
        error = apply.until("weights missing", timeout=20)
        assert time.monotonic() - started < 20, "the error shows within seconds"
        assert error.startswith("inferenceservice/broken: exited before serving (status 2): ... wharf serve: OSError")
        assert apply.proc.wait(20) == 1
        assert apply.proc.stderr is not None
        assert "error: timed out after 8s waiting for inferenceservice/broken" in apply.proc.stderr.read()

    began = time.monotonic()
    timed_out = daemon.wharf("wait", "--for=condition=Ready", "isvc/broken", "--timeout", "3s", check=False)
    assert timed_out.returncode == 1 and 2.5 < time.monotonic() - began < 15
    assert timed_out.stderr.startswith(
        "error: timed out after 3s waiting for inferenceservice/broken to be Ready=True; Ready is False: "
    )
    assert "weights missing" in timed_out.stderr
    missing = daemon.wharf("wait", "--for=condition=Ready", "isvc", "nope", "--timeout", "3s", check=False)
    assert missing.returncode == 1 and missing.stderr == "error: inferenceservice/nope not found in namespace default\n"
    wrong = daemon.wharf("wait", "--for=ready", "isvc/broken", check=False)
    assert wrong.returncode == 2 and "--for=condition=NAME[=STATUS] or --for=delete" in wrong.stderr

    with running(daemon, "wait", "--for=delete", "isvc/broken", "--timeout", "30s") as deletion:
        time.sleep(0.5)
        daemon.wharf("delete", "isvc/broken")
        assert deletion.until("inferenceservice/broken deleted")
        assert deletion.proc.wait(10) == 0
