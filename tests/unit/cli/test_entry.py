"""`wharf serve` loads only the model server's command; the other commands the whole CLI."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(argv: list[str]) -> set[str]:
    code = f"""
import sys
from wharf.cli.entry import run
try:
    run({argv!r})
except SystemExit as e:
    assert e.code == 0, e.code
print(" ".join(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_serve_does_not_load_the_whole_cli() -> None:
    loaded = _modules_after(["serve", "--help"])
    assert "wharf.cli.serve" in loaded
    assert not {"wharf.cli.main", "wharf.client.control", "httpx", "wharf.control.spec"} & loaded


def test_other_commands_load_the_whole_cli() -> None:
    assert "wharf.cli.main" in _modules_after(["--help"])
