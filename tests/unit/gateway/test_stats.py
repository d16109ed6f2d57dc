"""Sliding-window statistics per revision, driven by an injected clock."""

from __future__ import annotations

import pytest

from wharf.gateway.codes import Code
from wharf.gateway.stats import RevisionStats, Stats

OK, FAILED = Code("200", False), Code("500", True)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_no_requests() -> None:
    stats = Stats(window_s=60, bucket_s=10, clock=Clock())
    assert stats.snapshot(["a"]) == {"a": RevisionStats(0, 0, 0, 0.0, None, None, taken_at=1000.0)}


def test_counts_errors_and_percentiles() -> None:
    clock = Clock()
    stats = Stats(window_s=60, bucket_s=10, clock=clock)
    window = stats.window("a")
    for ms in range(1, 101):  # 1 ms .. 100 ms
        window.record(clock.now, ms / 1000, code=FAILED if ms > 95 else OK)
    window.in_flight = 3
    window.queued = 2
    got = stats.snapshot(["a"])["a"]
    assert (got.in_flight, got.queued, got.requests, got.errors, got.error_rate) == (3, 2, 100, 5, 0.05)
    assert got.p50_ms == pytest.approx(50, rel=0.05)
    assert got.p99_ms == pytest.approx(99, rel=0.05)


def test_percentiles_of_tiny_and_huge_latencies_stay_in_range() -> None:
    clock = Clock()
    stats = Stats(window_s=10, bucket_s=10, clock=clock)
    stats.window("a").record(clock.now, 0.0, code=OK)
    assert stats.snapshot(["a"])["a"].p50_ms == pytest.approx(0.01)
    stats.window("b").record(clock.now, 10_000.0, code=OK)
    assert stats.snapshot(["b"])["b"].p99_ms is not None


def test_old_buckets_leave_the_window() -> None:
    clock = Clock(1000.0)  # bucket 100
    stats = Stats(window_s=30, bucket_s=10, clock=clock)
    window = stats.window("a")
    window.record(clock.now, 0.010, code=FAILED)
    clock.now = 1015.0  # bucket 101
    window.record(clock.now, 0.020, code=OK)
    clock.now = 1025.0  # bucket 102: the window holds buckets 100..102
    assert stats.snapshot(["a"])["a"].requests == 2
    clock.now = 1030.0  # bucket 103: bucket 100 has left
    got = stats.snapshot(["a"])["a"]
    assert (got.requests, got.errors, got.error_rate) == (1, 0, 0.0)
    assert got.p50_ms == pytest.approx(20, rel=0.05)
    clock.now = 1060.0
    assert stats.snapshot(["a"])["a"].requests == 0


def test_recording_after_a_long_pause_drops_every_old_bucket() -> None:
    clock = Clock(0.0)
    stats = Stats(window_s=20, bucket_s=10, clock=clock)
    window = stats.window("a")
    for t in range(0, 50, 5):
        window.record(float(t), 0.001, code=OK)
    clock.now = 500.0
    window.record(clock.now, 0.001, code=FAILED)
    assert stats.snapshot(["a"])["a"].requests == 1


def test_windows_are_kept_only_for_retained_revisions() -> None:
    clock = Clock()
    stats = Stats(window_s=60, bucket_s=10, clock=clock)
    stats.window("old").record(clock.now, 0.001, code=OK)
    kept = stats.window("kept")
    kept.record(clock.now, 0.001, code=OK)
    stats.retain(["kept", "new"])
    assert stats.window("kept") is kept
    assert stats.snapshot(["old"])["old"].requests == 0
