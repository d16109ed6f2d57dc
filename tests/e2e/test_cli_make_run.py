"""`make run`'s script: the platform comes up with the iris service and its canary, answers the commands it prints
through the gateway, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.processes import ROOT

SCRIPT = ROOT / "examples/platform/run.sh"
MODEL = ROOT / "examples/iris/model.joblib"


def _processes_of(home: Path) -> list[int]:
    """Every process whose environment names `home` as its WHARF_HOME."""
    wanted = f"WHARF_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if wanted in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_run_serves_the_example_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    if not MODEL.exists():  # `make run` trains it first
        subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(MODEL)], check=True, timeout=120)
    home = tmp_path / "home"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "WHARF": str(bin_dir / "wharf"),
        "PYTHON": sys.executable,
        "WHARF_HOME": str(home),
        "GATEWAY_PORT": "0",
        "GATEWAY_GRPC_PORT": "0",
        "CONTROL_PORT": "0",
        "WHARF_MONITOR_PORT": "0",
    }
    run = subprocess.Popen(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, which Ctrl-C signals as a terminal would
    )
    lines: queue.Queue[str] = queue.Queue()
    assert run.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in run.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not output or not output[-1].startswith("Ctrl-C stops Wharf"):
            assert run.poll() is None and time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        text = "".join(output)
        assert "inferenceservice/iris: ready at http://iris.default.example.com" in text
        curls = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
        v1, v2_head = curls
        v2 = v2_head.rstrip("\\") + " " + text.split(v2_head, 1)[1].splitlines()[1].strip()
        for command in (v1, v2):
            answer = subprocess.run(
                ["curl", "-sS", "--max-time", "10", *shlex.split(command)[1:]],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert answer.returncode == 0 and re.search(r'"(predictions|outputs)"', answer.stdout), (command, answer)
        assert re.search(r"/docs \(the admin token", text)
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        try:
            status = run.wait(60)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    while not lines.empty():
        output.append(lines.get())
    assert status == 130 and output[-1] == "Wharf stopped.\n", "".join(output)
    left = _processes_of(home)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "processes left running after Ctrl-C"
