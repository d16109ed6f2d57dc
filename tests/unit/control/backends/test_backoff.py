"""The restart backoff, driven by a fake clock."""

from __future__ import annotations

from wharf.control.backends.backoff import RestartBackoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_delay_doubles_up_to_the_cap() -> None:
    backoff = RestartBackoff(1.0, 10.0, 60.0, Clock())
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]


def test_the_delay_starts_over_once_healthy_long_enough() -> None:
    clock = Clock()
    backoff = RestartBackoff(1.0, 60.0, 30.0, clock)
    assert [backoff.next_delay() for _ in range(3)] == [1, 2, 4]
    backoff.healthy()
    clock.now += 29
    assert backoff.next_delay() == 8  # healthy, but not for long enough
    backoff.healthy()
    clock.now += 10
    backoff.healthy()  # still healthy: the clock keeps running from the first check
    clock.now += 20
    assert backoff.next_delay() == 1
    assert backoff.next_delay() == 2


def test_an_unhealthy_spell_restarts_the_healthy_period() -> None:
    clock = Clock()
    backoff = RestartBackoff(1.0, 60.0, 30.0, clock)
    backoff.next_delay()
    backoff.next_delay()
    backoff.healthy()
    clock.now += 25
    backoff.unhealthy()
    backoff.healthy()
    clock.now += 25
    assert backoff.next_delay() == 4
