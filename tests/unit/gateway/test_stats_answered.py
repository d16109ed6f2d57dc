"""The answered-request count a revision's statistics carry for the autoscaler's requests per second."""

from __future__ import annotations

from wharf.gateway.codes import Code
from wharf.gateway.stats import Stats

OK, FAILED = Code("200", False), Code("500", True)


def test_answered_counts_every_request_since_the_window_began_and_a_snapshot_says_when_it_was_taken() -> None:
    now = [1000.0]
    stats = Stats(window_s=20, bucket_s=10, clock=lambda: now[0])
    window = stats.window("a")
    for _ in range(70):
        window.record(now[0], 0.001, code=OK)
    first = stats.snapshot(["a"])["a"]
    assert (first.answered, first.taken_at, first.requests) == (70, 1000.0, 70)
    now[0] = 1100.0  # long after: the window's buckets are gone, the count is not
    window.record(now[0], 0.001, code=FAILED)
    later = stats.snapshot(["a"])["a"]
    assert (later.answered, later.taken_at, later.requests) == (71, 1100.0, 1)
    stats.retain([])  # out of the route table: counted afresh if it comes back
    assert stats.snapshot(["a"])["a"].answered == 0
