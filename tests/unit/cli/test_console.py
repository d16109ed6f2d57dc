"""`wharf console`: the console's address with the home's admin token (or the viewer's) in its fragment, and what is
missing when it cannot make one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wharf.cli.main import app


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))
    monkeypatch.delenv("WHARF_CONTROL_URL", raising=False)
    monkeypatch.delenv("WHARF_TOKEN", raising=False)
    return tmp_path


def up(home: Path) -> None:
    """What `wharf up` leaves in its home."""
    address = {"control_url": "http://127.0.0.1:8002", "gateway_url": "", "gateway_grpc": "", "token": "ad/min+1"}
    (home / "daemon.json").write_text(json.dumps(address))
    (home / "credentials.json").write_text(json.dumps({"admin": "ad/min+1", "viewer": "view"}))


def test_the_address_carries_the_homes_token_in_its_fragment(home: Path) -> None:
    up(home)
    runner = CliRunner()
    assert runner.invoke(app, ["console"]).output == "http://127.0.0.1:8002/#token=ad%2Fmin%2B1\n"
    assert runner.invoke(app, ["console", "--viewer"]).output == "http://127.0.0.1:8002/#token=view\n"


def test_another_control_url_gets_the_homes_token_only_if_given_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up(home)
    monkeypatch.setenv("WHARF_CONTROL_URL", "http://10.0.0.9:8002")
    refused = CliRunner().invoke(app, ["console"])
    assert refused.exit_code == 1 and "WHARF_TOKEN" in refused.output  # the home's token stays with its daemon
    monkeypatch.setenv("WHARF_TOKEN", "given")
    assert CliRunner().invoke(app, ["console"]).output == "http://10.0.0.9:8002/#token=given\n"


def test_without_a_wharf_up_it_says_so(home: Path) -> None:
    refused = CliRunner().invoke(app, ["console"])
    assert refused.exit_code == 1 and "no `wharf up` found" in refused.output
