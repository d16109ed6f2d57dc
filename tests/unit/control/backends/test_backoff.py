"""A revision's restart backoff (CrashLoopBackOff), driven by a fake clock."""

from __future__ import annotations

from wharf.control.backends.backoff import RestartBackoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kubernetes(clock: Clock) -> RestartBackoff:
    return RestartBackoff(10.0, 300.0, 600.0, clock)


def test_the_first_end_restarts_at_once_then_the_delay_doubles_from_10_s_up_to_5_min() -> None:
    backoff = kubernetes(Clock())
    assert [backoff.ended(None) for _ in range(9)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_years_of_crash_looping_stay_at_the_cap() -> None:
    backoff = kubernetes(Clock())
    for _ in range(5000):
        backoff.ended(1.0)
    assert backoff.ended(1.0) == 300


def test_a_replica_ready_long_enough_before_it_ends_starts_the_count_over() -> None:
    backoff = kubernetes(Clock())
    assert [backoff.ended(None) for _ in range(4)] == [0, 10, 20, 40]
    assert backoff.ended(599.0) == 80  # ready, but not for long enough
    assert backoff.ended(600.0) == 0
    assert backoff.ended(5.0) == 10


def test_new_replicas_wait_until_the_latest_restart_is_due() -> None:
    clock = Clock()
    backoff = kubernetes(clock)
    assert backoff.wait_s() == 0
    backoff.ended(None)
    assert backoff.wait_s() == 0  # restarted at once
    backoff.ended(None)
    backoff.ended(None)  # a second replica of the revision ended too: 20 s
    clock.now += 5
    assert backoff.wait_s() == 15  # a replica scaled up (or back from zero) waits for the latest restart
    clock.now += 30
    assert backoff.wait_s() == 0


def test_failed_starts_count_replicas_in_a_row_that_were_never_ready() -> None:
    backoff = kubernetes(Clock())
    backoff.ended(None)
    backoff.ended(None)
    assert backoff.failed_starts == 2
    backoff.ready()
    assert backoff.failed_starts == 0
    backoff.ended(30.0)  # a crash after serving: the revision can start, its requests wait for it
    assert backoff.failed_starts == 0
