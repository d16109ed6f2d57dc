"""`wharf export`'s command line: a resource is named, or --all given, never both; an unknown kind is refused (the
exports themselves run against a real `wharf up` in tests/e2e/test_export.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wharf.cli.main import app


@pytest.mark.parametrize("kind", ["isvc", "ig"])
@pytest.mark.parametrize("args", [[], ["iris", "--all"]])
def test_a_resource_is_named_or_all_given_once(kind: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["export", kind, *args, "--control-url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and f"name one {kind}, or give --all" in result.output


def test_an_unknown_kind_is_refused() -> None:
    result = CliRunner().invoke(app, ["export", "bj", "nightly"])
    assert result.exit_code == 2 and "No such command 'bj'" in result.output
