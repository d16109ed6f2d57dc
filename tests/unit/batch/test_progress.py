"""Progress off a terminal: a plain line every few seconds with rows/s and ETA; the summary line."""

from __future__ import annotations

import io

from wharf.batch.progress import PLAIN_EVERY_S, Progress, Summary


def test_plain_lines_every_few_seconds_with_rate_and_eta() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = Progress(1000, stream, already=100, clock=lambda: now[0])
    now[0] += 1
    progress.advance(100)  # too soon for a line
    assert stream.getvalue() == ""
    now[0] = 100 + PLAIN_EVERY_S
    progress.advance(400)
    assert stream.getvalue() == "batch: 600/1000 rows, 100 rows/s, ETA 4 s\n"
    progress.close()


def test_the_summary_says_rows_bad_rows_time_rate_and_failed_chunks() -> None:
    assert Summary(1000, 2, [], 4.0).line() == "1000 rows predicted, 2 bad row(s), in 4.0 s (250 rows/s)"
    assert Summary(10, 0, [3, 5], 1.0).line().endswith("2 chunk(s) failed: [3, 5]")
