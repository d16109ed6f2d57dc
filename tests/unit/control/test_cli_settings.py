"""`wharf up` and `wharf serve` build their settings from the options given, and WHARF_* variables for the rest."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from wharf.cli.main import app


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The settings `wharf up` and `wharf serve` would run with; nothing is started."""
    seen: list[Any] = []

    async def run(settings: Any) -> None:
        seen.append(settings)

    class ModelServer:
        def __init__(self, settings: Any, *_: Any, **__: Any) -> None:
            seen.append(settings)

        def start(self) -> None:
            pass

    monkeypatch.setattr("wharf.control.daemon.run", run)
    monkeypatch.setattr("wharf.telemetry.logs.configure", lambda level: None)
    monkeypatch.setattr("wharf.server.app.ModelServer", ModelServer)
    return seen


def test_up_takes_ports_from_the_environment_unless_given(captured: list[Any]) -> None:
    env = {"WHARF_CONTROL_PORT": "9102", "WHARF_GATEWAY_HTTP_PORT": "9100", "WHARF_HOST": "127.0.0.2"}
    result = CliRunner().invoke(app, ["up", "--gateway-grpc-port", "9101", "--home", "/tmp/wharf-x"], env=env)
    assert result.exit_code == 0, result.output
    [settings] = captured
    assert (settings.host, settings.gateway_http_port, settings.gateway_grpc_port, settings.control_port) == (
        "127.0.0.2",
        9100,
        9101,
        9102,
    )
    result = CliRunner().invoke(app, ["up", "--control-port", "0"], env=env)
    assert result.exit_code == 0 and captured[1].control_port == 0  # an option given wins


def test_serve_takes_ports_from_the_environment_unless_given(captured: list[Any]) -> None:
    env = {"WHARF_HTTP_PORT": "9180", "WHARF_GRPC_PORT": "9181", "WHARF_MAX_BATCH_SIZE": "8"}
    result = CliRunner().invoke(app, ["serve", "models:WhoAmI", "--grpc-port", "0"], env=env)
    assert result.exit_code == 0, result.output
    [settings] = captured
    assert (settings.host, settings.http_port, settings.grpc_port, settings.max_batch_size) == (
        "127.0.0.1",
        9180,
        0,
        8,
    )


def test_an_invalid_setting_in_the_environment_is_named(captured: list[Any]) -> None:
    result = CliRunner().invoke(app, ["up"], env={"WHARF_CONTROL_PORT": "seventy"})
    assert result.exit_code == 2 and "control_port" in result.output and not captured


def test_up_runs_prometheus_when_asked(captured: list[Any]) -> None:
    env = {"WHARF_PROMETHEUS_SCRAPE_INTERVAL_S": "1", "WHARF_PROMETHEUS_PORT": "9191"}
    assert CliRunner().invoke(app, ["up"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["up", "--prometheus", "--prometheus-port", "0"], env=env).exit_code == 0
    off, on = captured
    assert (off.prometheus, off.prometheus_port, off.prometheus_scrape_interval_s) == (False, 9191, 1.0)
    assert (on.prometheus, on.prometheus_port, on.prometheus_host) == (True, 0, "127.0.0.1")
