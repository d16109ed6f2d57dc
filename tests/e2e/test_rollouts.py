"""InferenceServices on `wharf up`: apply, canary, tags, promotion, rollback, shadow, automatic rollback."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from tests.e2e.conftest import Daemon, manifest, ready, who_answers

HOST = "who.default.example.com"


def _traffic(service: dict) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]}


def test_canary_split_tags_promotion_and_rollback(daemon: Daemon) -> None:
    assert "created" in daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a")).stdout
    assert "unchanged" in daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a")).stdout
    first = daemon.wait("who", ready)
    assert first["status"]["url"] == "http://who.default.example.com"
    assert set(who_answers(daemon, HOST, 5)) == {"a"}

    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "b", canary=30))
    canary = daemon.wait("who", lambda s: ready(s) and len(_traffic(s)) == 2)
    predictor = canary["status"]["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == "who-predictor-00002"
    assert predictor["latestRolledoutRevision"] == "who-predictor-00001"
    assert _traffic(canary) == {"who-predictor-00002": 30, "who-predictor-00001": 70}

    counts = Counter(who_answers(daemon, HOST, 400))
    assert 0.22 < counts["b"] / 400 < 0.38, counts  # 30% within about 3.5 standard deviations
    assert set(who_answers(daemon, "latest-" + HOST, 10)) == {"b"}
    assert set(who_answers(daemon, "prev-" + HOST, 10)) == {"a"}
    assert set(who_answers(daemon, HOST, 10, {"x-wharf-revision": "who-predictor-00001"})) == {"a"}

    daemon.wharf("rollout", "promote", "who")
    promoted = daemon.wait("who", lambda s: _traffic(s) == {"who-predictor-00002": 100})
    assert promoted["status"]["components"]["predictor"]["previousRolledoutRevision"] == "who-predictor-00001"
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert set(who_answers(daemon, HOST, 10)) == {"b"}

    daemon.wharf("rollout", "rollback", "who")
    rolled_back = daemon.wait("who", lambda s: _traffic(s) == {"who-predictor-00001": 100})
    condition = next(c for c in rolled_back["status"]["conditions"] if c["type"] == "RolledBack")
    assert (condition["status"], condition["reason"]) == ("True", "RollbackRequested")
    assert condition["message"] == "who-predictor-00002: rolled back by `wharf rollout rollback`"
    assert set(who_answers(daemon, HOST, 10)) == {"a"}

    table = daemon.wharf("get", "isvc").stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "URL", "READY"] and "who" in table
    daemon.wharf("delete", "isvc", "who")
    with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": HOST}) as client:
        assert client.post("/v2/models/who/infer", json={}).status_code == 404


def test_canary_percent_zero_and_shadow_traffic(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wait("who", ready)
    shadowed = manifest("who", "b", canary=0, annotations={"serving.wharf.dev/shadow-percent": "100"})
    daemon.wharf("apply", "-f", "-", stdin=shadowed)
    daemon.wait(
        "who",
        lambda s: s["status"]["components"]["predictor"]["latestCreatedRevision"] == "who-predictor-00002" and ready(s),
    )
    service = daemon.isvc("who")
    shadow = [r for r in service["status"]["replicaStates"] if r["revision"] == "who-predictor-00002"]
    assert shadow and shadow[0]["ready"]

    def mirrored() -> float:
        metrics = httpx.get(f"http://127.0.0.1:{shadow[0]['http_port']}/metrics", timeout=10).text
        counts = [line for line in metrics.splitlines() if line.startswith('wharf_requests_total{model="who"')]
        return float(counts[0].split()[-1]) if counts else 0.0

    deadline = time.monotonic() + 30
    while mirrored() < 20:  # copies are fire and forget: keep asking until enough have arrived
        assert time.monotonic() < deadline, "mirrored requests did not reach the shadow revision"
        assert set(who_answers(daemon, HOST, 10)) == {"a"}  # the shadow's answers never reach the client


def test_a_failing_canary_is_rolled_back_automatically(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wait("who", ready)
    guarded = {"serving.wharf.dev/auto-rollback-error-rate": "0.2"}
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "broken", canary=50, annotations=guarded))
    daemon.wait("who", lambda s: ready(s) and len(_traffic(s)) == 2)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": HOST}) as client:
        statuses = Counter(client.post("/v2/models/who/infer", json=body).status_code for _ in range(60))
    assert statuses[500] > 10  # the broken canary answered some
    rolled_back = daemon.wait("who", lambda s: _traffic(s) == {"who-predictor-00001": 100}, timeout=30)
    conditions = {c["type"]: c for c in rolled_back["status"]["conditions"]}
    assert (conditions["RolledBack"]["status"], conditions["RolledBack"]["reason"]) == ("True", "CanaryFailed")
    assert "canary who-predictor-00002 failed" in conditions["RolledBack"]["message"]
    assert "failed" not in conditions["Ready"]["message"]  # the reason has a condition of its own
    assert set(who_answers(daemon, HOST, 20)) == {"a"}


def test_invalid_manifests_are_refused_with_the_field_path(daemon: Daemon) -> None:
    bad = manifest("who", "a").replace("    model:\n", "    containers: [{image: x}]\n    model:\n")
    run = daemon.wharf("apply", "-f", "-", stdin=bad, check=False)
    assert run.returncode == 1 and "spec.predictor.containers" in run.stderr
    assert daemon.wharf("get", "isvc").stdout.splitlines()[1:] == []


def test_parts_not_served_yet_are_refused_not_ignored(daemon: Daemon) -> None:
    explained = manifest("who", "a") + "  explainer: {containers: [{image: kserve/alibi-explainer}]}\n"
    run = daemon.wharf("apply", "-f", "-", stdin=explained, check=False)
    assert run.returncode == 1 and "spec.explainer.containers not served by this Wharf yet" in run.stderr
