"""The entry point sends `wharf serve` and `wharf batch` to their own commands, which load neither the rest of the
CLI nor the HTTP clients (a model server pays them in memory, a batch job in its parent and, for aiohttp, in every
worker); any other command loads the whole CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

WHOLE_CLI = {"wharf.cli.main", "wharf.client.control", "wharf.control.spec", "httpx"}


def _help_and_modules(argv: list[str]) -> tuple[str, set[str]]:
    """What `wharf ARGV` (a --help) prints, and the modules it loaded, run in a fresh interpreter."""
    code = f"""
import sys
from wharf.cli.entry import run
try:
    run({argv!r})
except SystemExit as e:
    assert e.code == 0, e.code
print("\\0", " ".join(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown, modules = done.stdout.split("\0")
    return shown, set(modules.split())


@pytest.mark.parametrize(
    ("command", "own", "not_loaded"),
    [("serve", "wharf.cli.serve", WHOLE_CLI), ("batch", "wharf.cli.batch", {*WHOLE_CLI, "aiohttp"})],
)
def test_serve_and_batch_load_only_their_own_command(command: str, own: str, not_loaded: set[str]) -> None:
    shown, loaded = _help_and_modules([command, "--help"])
    assert f"Usage: wharf {command}" in shown
    assert own in loaded
    assert not not_loaded & loaded


def test_other_commands_load_the_whole_cli() -> None:
    shown, loaded = _help_and_modules(["--help"])
    assert "batch" in shown and "serve" in shown
    assert "wharf.cli.main" in loaded
