"""The control CLI's mistakes are one clear line each: a file it cannot read, a control plane it cannot reach."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from wharf.cli.main import app


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("not a manifest")
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    for path, why in (
        (tmp_path / "missing.yaml", f"cannot read {tmp_path / 'missing.yaml'}: No such file or directory"),
        (tmp_path, f"cannot read {tmp_path / 'bad.yaml'}: 'utf-8' codec can't decode"),  # a directory's manifests
        (tmp_path / "empty", f"{tmp_path / 'empty'} holds no .yaml, .yml, .json files"),
    ):
        result = CliRunner().invoke(app, ["apply", "-f", str(path)], env={"COLUMNS": "400"})  # one line, unwrapped
        assert result.exit_code == 2 and why in result.output, result.output


def test_an_unreachable_control_plane_says_where_to_point() -> None:
    result = CliRunner().invoke(app, ["get", "isvc", "--control-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the Wharf control plane at http://127.0.0.1:9" in result.output
    assert "--control-url or WHARF_CONTROL_URL" in result.output
