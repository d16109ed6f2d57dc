"""The model monitor as `wharf up` runs it: started with the daemon, started again on its port when it dies,
adopted by the next daemon after a crash (so payload logs keep arriving), and stopped with the daemon."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import start_daemon

MONITOR_ON = {"WHARF_MONITOR_ENABLED": "true"}


def recorded(home: Path) -> dict:
    return json.loads((home / "monitor.json").read_text())


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_monitor_is_restarted_adopted_after_a_crash_and_stopped_with_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    daemon = start_daemon(home, env=MONITOR_ON)
    url = json.loads((home / "daemon.json").read_text())["monitor_url"]
    first = recorded(home)
    assert url == f"http://127.0.0.1:{first['port']}" and answers(url)

    os.kill(first["pid"], signal.SIGKILL)  # the monitor dies: the daemon starts it again on the same port
    deadline = time.monotonic() + 30
    while not (answers(url) and recorded(home)["pid"] != first["pid"]):
        assert time.monotonic() < deadline, "the monitor was not started again"
        time.sleep(0.2)

    restarted = recorded(home)
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: the monitor keeps running
    assert answers(url)
    again = start_daemon(home, env=MONITOR_ON)
    try:
        assert recorded(home) == restarted  # adopted, not started anew
        assert json.loads((home / "daemon.json").read_text())["monitor_url"] == url
    finally:
        again.stop()
    assert not answers(url) and not (home / "monitor.json").exists()
