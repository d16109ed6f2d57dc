"""The `wharf` command's entry point (`[project.scripts]`, `python -m wharf.cli`).

`wharf batch ...` goes straight to its own command (batch.py), which imports only what a batch job needs, and
`wharf serve ...` (what every replica runs, forked from the template or not) to its own (serve.py), which imports
only what a model server needs; any other command goes to the whole CLI (main.py), whose import (every command's
modules, httpx, the control client, the spec models) costs about 0.4 CPU s and a model server about 10 MiB resident.
A batch job's workers are spawned processes that import this module again (as the command's main module), so it
imports nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main() -> None:
    run(sys.argv[1:])


def run(argv: Sequence[str]) -> None:
    """Run `wharf ARGV`; raises SystemExit as click does."""
    command, *rest = argv or [""]
    if command == "batch":
        from wharf.cli.batch import app

        app(args=rest, prog_name="wharf batch")
    elif command == "serve":
        from wharf.cli.serve import app

        app(args=rest, prog_name="wharf serve")
    else:
        from wharf.cli.main import app

        app(args=list(argv), prog_name="wharf")
