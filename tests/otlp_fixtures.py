"""Fixtures of tests that read spans: `receiver` (an OtlpReceiver), `otlp` (one for the whole module, for the
processes a module starts once) and `traced` (tracing on in the test's own process). A test module takes them with
`pytest_plugins = ["tests.otlp_fixtures"]`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otlp_receiver import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def traced(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """Tracing on in this process, exporting to `receiver` every 50 ms; off again (what was queued flushed) after
    the test."""
    from wharf.telemetry import tracing

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure("wharf-test", {"wharf.component": "unit"})
    yield receiver
    tracing.shutdown()
