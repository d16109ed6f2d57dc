"""Where the ControlClient sends its token: the home's token only to the home's daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wharf.client.control import ControlClient


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    address = {
        "control_url": "http://127.0.0.1:8002",
        "gateway_url": "http://127.0.0.1:8000",
        "gateway_grpc": "127.0.0.1:8001",
        "token": "home-token",
    }
    (tmp_path / "daemon.json").write_text(json.dumps(address))
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))
    monkeypatch.delenv("WHARF_CONTROL_URL", raising=False)
    monkeypatch.delenv("WHARF_TOKEN", raising=False)
    return tmp_path


def _authorization(client: ControlClient) -> str | None:
    return client._async._http.headers.get("authorization")


def test_the_home_daemon_gets_the_home_token(home: Path) -> None:
    with ControlClient() as client:
        assert str(client.url).startswith("http://127.0.0.1:8002")
        assert _authorization(client) == "Bearer home-token"


def test_another_url_never_gets_the_home_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ControlClient("http://colleague.example.com:8002") as client:
        assert _authorization(client) is None
    monkeypatch.setenv("WHARF_TOKEN", "given")
    with ControlClient("http://colleague.example.com:8002") as client:
        assert _authorization(client) == "Bearer given"
