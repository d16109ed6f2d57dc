"""`wharf batch` starts light: the entry point sends it to its own command, which imports neither the rest of the
CLI nor the HTTP clients (a batch job pays that in its parent and, for aiohttp, in every worker)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("wharf.cli.main", "wharf.client.control", "httpx", "aiohttp")
PROBE = f"""
import atexit, sys
atexit.register(lambda: print("loaded:", [m for m in {HEAVY!r} if m in sys.modules]))
sys.argv = ["wharf", *sys.argv[1:]]
from wharf.cli.entry import main
main()
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)


def test_wharf_batch_imports_only_what_a_job_needs() -> None:
    done = run("batch", "--help")
    assert done.returncode == 0 and "Usage: wharf batch" in done.stdout
    assert "loaded: []" in done.stdout


def test_every_other_command_is_the_whole_cli() -> None:
    done = run("--help")
    assert done.returncode == 0 and "batch" in done.stdout and "serve" in done.stdout
    assert "'wharf.cli.main'" in done.stdout
