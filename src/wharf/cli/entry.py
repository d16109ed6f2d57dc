"""The `wharf` command's entry point (`[project.scripts]`, `python -m wharf.cli`).

`wharf batch ...` goes straight to its own command (batch.py), which imports only what a batch job needs; any other
command goes to the whole CLI (main.py), whose import (every command's modules, httpx, the control client, the spec
models) costs about 0.4 CPU s that a batch job would otherwise pay before its first worker starts. A batch job's
workers are spawned processes that import this module again (as the command's main module), so it imports nothing.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["batch"]:
        from wharf.cli.batch import app

        app(args=sys.argv[2:], prog_name="wharf batch")
    else:
        from wharf.cli.main import app

        app(prog_name="wharf")
