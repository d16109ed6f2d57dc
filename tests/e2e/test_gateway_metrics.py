"""The gateway process of `wharf up` serves its own /metrics: requests per service, revision and code."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Daemon, manifest, ready, who_answers


def test_the_gateways_metrics_count_two_services_and_a_canary(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wharf("apply", "-f", "-", stdin=manifest("other", "c"))
    daemon.wait("other", ready)
    daemon.wait("who", ready)
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "b", canary=30))
    daemon.wait("who", lambda s: ready(s) and len(s["status"]["components"]["predictor"]["traffic"]) == 2)
    answers = who_answers(daemon, "who.default.example.com", 40)
    assert set(who_answers(daemon, "other.default.example.com", 10)) == {"c"}

    text = httpx.get(f"{daemon.gateway_url}/metrics", timeout=10).text
    counted = {
        (s.labels["service"], s.labels["revision"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "wharf_gateway_requests_total" and s.labels["traffic"] == "live"
    }
    assert counted == {
        ("who", "who-predictor-00001", "200"): answers.count("a"),
        ("who", "who-predictor-00002", "200"): answers.count("b"),
        ("other", "other-predictor-00001", "200"): 10,
    }
    assert "wharf_gateway_request_duration_seconds_bucket" in text and "wharf_gateway_retries_total" in text
