"""Starting Wharf's own commands as real processes in tests, and waiting for the log line that says they are up."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def start(
    command: list[str], env: dict[str, str], event: str, timeout: float, cwd: Path = ROOT
) -> tuple[subprocess.Popen, dict[str, Any], list[str]]:
    """Run `command` (in `cwd`) and wait for the JSON log line whose "event" is `event`; returns the process, that
    line and the log so far (kept growing by a background reader). The process is killed if it does not get there."""
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(command[2:4])} exited with {proc.returncode}:\n{''.join(lines)}")
            continue
        lines.append(line)
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if found.get("event") == event:
            threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True).start()
            return proc, found, lines
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"{' '.join(command[2:4])} did not start within {timeout} s:\n{''.join(lines)}")
