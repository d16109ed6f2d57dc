"""The control API on `wharf up`: client mistakes answer 4xx `{"error"}`, and a resource that cannot run does not
take the daemon down."""

from __future__ import annotations

import time
from pathlib import Path


from tests.e2e.conftest import Daemon, manifest, ready, start_daemon, who_answers
from wharf.control.plan import parse
from wharf.control.store import Store


def _in(namespace: str, text: str) -> str:
    return text.replace("metadata:\n", f"metadata:\n  namespace: {namespace}\n", 1)


def test_services_whose_revisions_would_share_names_are_refused(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("a-b", "ab"))
    run = daemon.wharf("apply", "-f", "-", stdin=_in("b", manifest("a", "ba")), check=False)
    assert run.returncode == 1
    assert "InferenceService b/a and InferenceService default/a-b" in run.stderr and "a-b-predictor" in run.stderr
    daemon.wait("a-b", ready)
    assert daemon.proc.poll() is None
    assert set(who_answers(daemon, "a-b.default.example.com", 5)) == {"ab"}


def test_a_daemon_whose_store_holds_a_resource_it_cannot_run_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(home / "wharf.db")  # as an older Wharf, which did not refuse the clash, left it
    for doc in parse(manifest("a-b", "ab") + "---\n" + _in("b", manifest("a", "ba"))):
        store.put(doc.kind, doc.namespace, doc.name, doc.manifest)
    store.close()
    daemon = start_daemon(home)
    try:
        deadline = time.monotonic() + 30
        while sum("resync failed" in line for line in daemon.log) < 2:  # resyncs fail on the clash, and go on
            assert daemon.proc.poll() is None and time.monotonic() < deadline, "".join(daemon.log[-30:])
            time.sleep(0.1)
        daemon.wharf("delete", "isvc", "a", "-n", "b")
        daemon.wait("a-b", ready)
        assert set(who_answers(daemon, "a-b.default.example.com", 5)) == {"ab"}
    finally:
        assert daemon.stop() == 0


def test_client_mistakes_answer_4xx_with_an_error(daemon: Daemon) -> None:
    with daemon.control() as control:
        answer = control.post(
            "/apis/apply", content=b"\xff\xfename: who\n", headers={"content-type": "application/yaml"}
        )
    assert answer.status_code == 400 and "must be UTF-8 YAML or JSON" in answer.json()["error"]

    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    run = daemon.wharf("rollout", "rollback", "who", check=False)
    assert run.returncode == 1 and "no canary or earlier revision to roll back to" in run.stderr
    conditions = daemon.wait("who", ready)["status"]["conditions"]
    assert not any("rolled back" in c["message"] for c in conditions)
    described = daemon.wharf("describe", "isvc", "who").stdout  # the resource as YAML, then its events
    assert described.startswith(daemon.wharf("get", "isvc", "who", "-o", "yaml").stdout) and "\nEvents:\n" in described
