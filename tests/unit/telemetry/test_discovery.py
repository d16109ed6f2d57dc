"""Prometheus HTTP service discovery's answer, from plain data."""

from __future__ import annotations

import pytest

from wharf.telemetry.discovery import (
    GATEWAY_JOB,
    ScrapeTarget,
    http_sd,
    local_address,
    replica_target,
    url_address,
)


def test_one_target_group_per_target_with_its_job_and_labels() -> None:
    replica = replica_target("127.0.0.1:40001", "team-a", "iris", "predictor", "iris-team-a-predictor-00002", "r1")
    answer = http_sd([ScrapeTarget("127.0.0.1:8000", GATEWAY_JOB), replica])
    assert answer == [
        {"targets": ["127.0.0.1:8000"], "labels": {"__metrics_path__": "/metrics", "job": "wharf-gateway"}},
        {
            "targets": ["127.0.0.1:40001"],
            "labels": {
                "__metrics_path__": "/metrics",
                "job": "wharf-replica",
                "namespace": "team-a",
                "service": "iris",
                "component": "predictor",
                "revision": "iris-team-a-predictor-00002",
                "replica": "r1",
            },
        },
    ]
    assert http_sd([]) == []  # Prometheus reads an empty list as no targets


@pytest.mark.parametrize(
    ("host", "port", "address"),
    [
        ("127.0.0.1", 8000, "127.0.0.1:8000"),
        ("0.0.0.0", 8000, "127.0.0.1:8000"),  # a wildcard is reached on loopback
        ("::", 8000, "[::1]:8000"),
        ("::1", 8002, "[::1]:8002"),
        ("[::1]", 8002, "[::1]:8002"),
        ("localhost", 9090, "localhost:9090"),
    ],
)
def test_addresses_a_local_prometheus_reaches(host: str, port: int, address: str) -> None:
    assert local_address(host, port) == address


def test_addresses_of_urls() -> None:
    assert url_address("http://0.0.0.0:8003") == "127.0.0.1:8003"
    assert url_address("http://[::1]:8002") == "[::1]:8002"
    assert url_address("http://example.com") == "example.com:80"
