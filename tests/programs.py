"""The programs some tests drive that are not Python packages (Debian's chromium, kubectl, prometheus, promtool).
`make test` installs each through a Makefile rule; a test that cannot find one fails, naming the rule, rather than
skipping: a skipped test would hide that what it checks went unchecked."""

from __future__ import annotations

import shutil

import pytest


def program(name: str, rule: str) -> str:
    """The path of the program `name` (a command on PATH, or an absolute path); fails the test that asks for it,
    naming `make RULE`, when it is missing or not executable."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is missing or not executable: `make {rule}` (which `make test` runs) installs it", pytrace=False
        )
    return found
