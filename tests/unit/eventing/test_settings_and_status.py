"""The consumer's settings from the environment, its `serving` line, and what its status listener reports."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from wharf.control.backends.logfile import serving_ports
from wharf.eventing.settings import ConsumerSettings
from wharf.eventing.status import PartitionFigures, Status, StatusApp
from wharf.eventing.statusline import status_port

REQUIRED = {
    "WHARF_KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
    "WHARF_KAFKA_TOPICS": "a, b,",
    "WHARF_KAFKA_GROUP_ID": "g",
    "WHARF_KAFKA_SINK_URL": "http://127.0.0.1:8000/",
    "WHARF_KAFKA_MODEL": "iris",
}


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REQUIRED, "WHARF_KAFKA_SINK_PATH_PREFIX": "serving/default/iris/"}.items():
        monkeypatch.setenv(name, value)
    settings = ConsumerSettings()
    assert settings.topics == ["a", "b"]
    assert settings.sink_url == "http://127.0.0.1:8000" and settings.sink_path_prefix == "/serving/default/iris"
    assert settings.initial_offset == "latest" and settings.format == "auto" and settings.status_port == 0


def test_bad_settings_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REQUIRED, "WHARF_KAFKA_SINK_URL": "127.0.0.1:8000"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="sink_url"):
        ConsumerSettings()


def test_the_serving_line_gives_the_status_port_and_is_no_model_server_line() -> None:
    line = orjson.dumps({"event": "serving", "status_port": 4321, "topics": ["a"]})
    assert status_port(line) == 4321 and status_port(line.decode()) == 4321
    assert serving_ports(line) is None
    assert status_port(b'{"event": "serving", "http_port": 1, "grpc_port": 2}') is None
    assert status_port(b'{"event": "other", "status_port": 4321}') is None
    assert status_port(b'{"event": "serving", "status_port": 0}') is None
    assert status_port(b"status_port garbage") is None


def test_the_status_document() -> None:
    status = Status("g", ["a"])
    status.partitions[("a", 1)] = PartitionFigures(committed=5, end=9)
    status.partitions[("a", 0)] = PartitionFigures(end=3)
    status.answered_at([1000, 2000], now_s=3.0)
    doc = status.document()
    assert doc["state"] == "connecting" and doc["lag"] == 7
    assert doc["partitions"][0] == {"topic": "a", "partition": 0, "committed": None, "end": 3, "lag": 3}
    assert doc["latency_ms"]["max"] == 2000.0 and doc["latency_ms"]["count"] == 2
    assert set(doc["counters"]) == {"consumed", "answered", "dead_lettered", "retried", "duplicates_suspected"}


async def _get(app: StatusApp, path: str) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path}, None, send)
    return sent[0]["status"], sent[1]["body"]


@pytest.mark.anyio
async def test_the_status_listener_answers_status_metrics_and_health() -> None:
    status = Status("g", ["a"])
    status.partitions[("a", 0)] = PartitionFigures(committed=2, end=5)
    status.counters["answered"] = 7
    status.became("broker-unavailable", "fetching end offsets: no answer within 3 s")
    app = StatusApp(status)
    code, body = await _get(app, "/status")
    assert code == 200 and orjson.loads(body)["reason"].startswith("fetching end offsets")
    code, body = await _get(app, "/metrics")
    text = body.decode()
    assert code == 200 and "wharf_kafka_answered_total 7.0" in text
    assert 'wharf_kafka_lag{partition="0",topic="a"} 3.0' in text
    assert (
        'wharf_kafka_state{reason="fetching end offsets: no answer within 3 s",state="broker-unavailable"} 1.0' in text
    )
    assert (await _get(app, "/healthz"))[0] == 200
    assert (await _get(app, "/nope"))[0] == 404


def test_sasl_needs_its_mechanism_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**REQUIRED, "WHARF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        ConsumerSettings()
    monkeypatch.setenv("WHARF_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("WHARF_KAFKA_SASL_PLAIN_USERNAME", "u")
    monkeypatch.setenv("WHARF_KAFKA_SASL_PLAIN_PASSWORD", "p")
    assert ConsumerSettings().sasl_plain_password.get_secret_value() == "p"
