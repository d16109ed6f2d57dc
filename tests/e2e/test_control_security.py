"""Who may reach the control API of a real `wharf up`: tokens and roles, cross-site requests, where it listens."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Daemon, manifest, start_daemon
from tests.processes import ROOT

LIST = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"


def _credentials(daemon: Daemon) -> dict[str, str]:
    return json.loads((daemon.home / "credentials.json").read_text())


def test_every_call_needs_a_token_and_the_viewer_only_reads(daemon: Daemon) -> None:
    tokens = _credentials(daemon)
    with httpx.Client(base_url=daemon.control_url, timeout=10) as anonymous:
        for method, path in [("GET", LIST), ("GET", "/prometheus/targets"), ("POST", "/apis/apply")]:
            answer = anonymous.request(method, path, headers={"content-type": "application/yaml"}, content=b"x: 1")
            assert answer.status_code == 401, (method, path, answer.text)
            assert "bearer token" in answer.json()["error"]
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200  # probes need no token
        assert anonymous.get("/metrics").status_code == 200  # nor scrapes: a scrape job's token reaches every target
        wrong = anonymous.get(LIST, headers={"authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    with httpx.Client(base_url=daemon.control_url, timeout=10, headers=viewer) as client:
        assert client.get(LIST).json()["items"] == []
        refused = client.post("/apis/apply", content=manifest("who", "a"), headers={"content-type": "application/yaml"})
        assert refused.status_code == 403 and "may only read" in refused.json()["error"]
        assert client.delete(f"{LIST}/who").status_code == 403
    with daemon.control() as admin:
        applied = admin.post("/apis/apply", content=manifest("who", "a"), headers={"content-type": "application/yaml"})
        assert applied.status_code == 200, applied.text


def test_tokens_are_kept_private_and_printed_only_when_made(daemon: Daemon) -> None:
    for name in ("credentials.json", "daemon.json"):
        assert stat.S_IMODE((daemon.home / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.home.stat().st_mode) == 0o700
    tokens = _credentials(daemon)
    assert tokens["admin"] in "".join(daemon.log)  # the first start shows it once
    assert daemon.stop() == 0
    again = start_daemon(daemon.home)
    try:
        assert tokens["admin"] not in "".join(again.log)
        assert _credentials(again) == tokens  # the same tokens after a restart
    finally:
        assert again.stop() == 0


YAML = "application/yaml"


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"host": "evil.example.com", "content-type": YAML}, 403, "does not answer to host"),  # DNS rebinding
        ({"origin": "http://evil.example.com", "content-type": YAML}, 403, "cross-origin"),
        ({"content-type": "text/plain"}, 415, "JSON or YAML"),  # what any page may post anywhere without asking
        ({"content-type": "application/x-www-form-urlencoded"}, 415, "JSON or YAML"),
        ({}, 415, "JSON or YAML"),
    ],
)
def test_cross_site_requests_are_refused_before_the_token_is_read(
    daemon: Daemon, headers: dict[str, str], status: int, says: str
) -> None:
    with daemon.control() as admin:
        answer = admin.post("/apis/apply", content=manifest("who", "a").encode(), headers=headers)
        assert answer.status_code == status, answer.text
        assert says in answer.json()["error"]
        assert admin.get(LIST).json()["items"] == []  # nothing was applied
        assert admin.get(LIST, headers={"origin": daemon.control_url}).status_code == 200  # its own origin


def test_the_control_api_stays_on_loopback_when_the_gateway_moves(tmp_path: Path) -> None:
    home = tmp_path / "home"
    running = start_daemon(home, env={"WHARF_HOST": "127.0.0.2"})
    try:
        address = json.loads((home / "daemon.json").read_text())
        assert address["gateway_url"].startswith("http://127.0.0.2:")
        assert address["control_url"].startswith("http://127.0.0.1:")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{running.control_port}/healthz", timeout=5)
        answer = httpx.get(f"{address['gateway_url']}/v2/models/who", timeout=5)  # the gateway answers there
        assert answer.status_code == 404 and "error" in answer.json()
    finally:
        assert running.stop() == 0


def test_the_cli_finds_its_daemon_and_token_in_wharf_home(daemon: Daemon, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_CONTROL_URL", "WHARF_TOKEN")}
    run = subprocess.run(
        [sys.executable, "-m", "wharf.cli", "apply", "-f", "-"],
        input=manifest("who", "a"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "WHARF_HOME": str(daemon.home)},
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert "inferenceservice/who created" in run.stdout
    elsewhere = subprocess.run(
        [sys.executable, "-m", "wharf.cli", "get", "isvc", "--control-url", daemon.control_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "WHARF_HOME": str(tmp_path / "another-home")},  # no token there
        cwd=ROOT,
    )
    assert elsewhere.returncode == 1 and "bearer token" in elsewhere.stderr


def test_nobody_unloads_the_models_of_a_deployed_service(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    replica = daemon.wait("who", lambda s: any(r["ready"] for r in s["status"].get("replicaStates", [])))
    port = next(r["http_port"] for r in replica["status"]["replicaStates"] if r["ready"])
    through_gateway = httpx.post(
        f"{daemon.gateway_url}/v2/repository/models/who/unload", headers={"host": "who.default.example.com"}
    )
    assert through_gateway.status_code == 403, through_gateway.text
    at_the_replica = httpx.post(f"http://127.0.0.1:{port}/v2/repository/models/who/unload")
    assert at_the_replica.status_code == 403 and "WHARF_REPOSITORY_API" in at_the_replica.json()["error"]
    assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
