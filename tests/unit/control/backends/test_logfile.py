"""Reading replica log files: the `serving` line and the last lines kept for errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from wharf.control.backends.logfile import LogFollower, last_lines, serving_ports
from wharf.telemetry.logs import JsonFormatter


def _serving_line(**fields: object) -> str:
    return orjson.dumps({"ts": "2026-01-01T00:00:00.000Z", "level": "info", "event": "serving", **fields}).decode()


def test_the_ports_come_from_the_serving_line() -> None:
    line = _serving_line(http_port=40557, grpc_port=41267, host="127.0.0.1", models=["echo"])
    assert serving_ports(line) == (40557, 41267)
    assert serving_ports(line.encode()) == (40557, 41267)


def test_the_model_servers_own_formatter_writes_a_line_that_parses() -> None:
    import logging

    record = logging.LogRecord("wharf.server", logging.INFO, "", 0, "serving", None, None)
    record.__dict__.update(http_port=8080, grpc_port=8081)
    assert serving_ports(JsonFormatter().format(record)) == (8080, 8081)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "wharf serve: model path /x does not exist",
        '{"event": "serving"',  # cut
        '["serving"]',
        _serving_line(http_port=8080),
        _serving_line(http_port=8080, grpc_port="8081"),
        _serving_line(http_port=True, grpc_port=8081),
        _serving_line(http_port=0, grpc_port=8081),
        orjson.dumps({"event": "draining", "note": "serving", "http_port": 1, "grpc_port": 2}).decode(),
    ],
)
def test_other_lines_give_no_ports(line: str) -> None:
    assert serving_ports(line) is None


def test_the_follower_returns_complete_lines_from_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "replica.log"
    follower = LogFollower(path, 0)
    assert follower.new_lines() == []  # no file yet
    path.write_bytes(b"old run\n")
    follower = LogFollower(path, path.stat().st_size)
    with open(path, "ab") as f:
        f.write(b"first\nsec")
        f.flush()
        assert follower.new_lines() == [b"first"]
        f.write(b"ond\n")
        f.flush()
        assert follower.new_lines() == [b"second"]
        assert follower.new_lines() == []


def test_last_lines_stay_after_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "replica.log"
    assert last_lines(path, 0, 5) == ""
    path.write_text("earlier run\n")
    offset = path.stat().st_size
    with open(path, "a") as f:
        f.write("".join(f"line {i}\n" for i in range(10)))
    assert last_lines(path, offset, 3) == "line 7\nline 8\nline 9"
    assert last_lines(path, offset, 50).splitlines()[0] == "line 0"


def test_last_lines_of_a_long_log_read_only_its_end(tmp_path: Path) -> None:
    path = tmp_path / "replica.log"
    path.write_text("".join(f"line {i}\n" for i in range(200_000)))
    assert last_lines(path, 0, 2) == "line 199998\nline 199999"


def test_last_lines_leave_out_routine_records(tmp_path: Path) -> None:
    path = tmp_path / "replica.log"
    path.write_text(
        '{"level":"info","event":"model loaded"}\n{"level":"info","event":"serving"}\n'
        'Traceback (most recent call last):\n{"level":"error","event":"boom"}\n'
    )
    assert last_lines(path, 0, 5) == 'Traceback (most recent call last):\n{"level":"error","event":"boom"}'
    path.write_text('{"level":"info","event":"serving"}\n')  # killed while serving: nothing tells why
    assert last_lines(path, 0, 5) == ""
