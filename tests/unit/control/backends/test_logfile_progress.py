"""A replica's `downloading model` lines, read from its log as the control plane shows them."""

from __future__ import annotations

import logging

import orjson
import pytest

from wharf.control.backends.logfile import download_progress
from wharf.telemetry.logs import JsonFormatter
from wharf.storage.progress import EVENT


def _line(**fields: object) -> bytes:
    return orjson.dumps({"ts": "2026-01-01T00:00:00.000Z", "level": "info", "event": EVENT, **fields})


def test_the_share_done_and_the_size_in_all() -> None:
    assert download_progress(_line(bytes_done=480_000_000, bytes_total=1_200_000_000)) == (
        "downloading model 40% of 1.2 GB"
    )
    assert download_progress(_line(bytes_done=0, bytes_total=2_097_152)) == "downloading model 0% of 2.1 MB"
    assert download_progress(_line(bytes_done=512, bytes_total=512)) == "downloading model 100% of 512 B"


def test_an_unknown_total_shows_the_bytes_so_far() -> None:
    assert download_progress(_line(bytes_done=12_345_678, bytes_total=None)) == "downloading model: 12.3 MB so far"


def test_the_model_servers_own_formatter_writes_a_line_that_parses() -> None:
    record = logging.LogRecord("wharf.storage.progress", logging.INFO, "", 0, EVENT, None, None)
    record.__dict__.update(uri="http://h/model.json", bytes_done=1500, bytes_total=3000)
    assert download_progress(JsonFormatter().format(record).encode()) == "downloading model 50% of 3.0 kB"


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"wharf serve: could not fetch http://h/model.json: downloading model failed",
        _line(bytes_done="10", bytes_total=100),
        _line(bytes_done=-1, bytes_total=100),
        _line(bytes_done=10, bytes_total="100"),
        _line(bytes_total=100),
        orjson.dumps({"event": "serving", "note": EVENT, "bytes_done": 1, "bytes_total": 2}),
        _line(bytes_done=10, bytes_total=100)[:-3],  # cut
    ],
)
def test_other_lines_say_nothing(line: bytes) -> None:
    assert download_progress(line) is None
