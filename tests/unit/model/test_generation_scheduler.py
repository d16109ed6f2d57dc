"""The continuous-batching scheduler: admission by batch size and reserved tokens, a fair FIFO queue, leaving."""

from __future__ import annotations

import pytest

from wharf.model.generation.scheduler import Entry, Schedule


def _ids(entries: tuple[Entry, ...]) -> list[int]:
    return [e.id for e in entries]


def test_admits_in_order_up_to_the_batch_size() -> None:
    schedule = Schedule(max_sequences=2, max_tokens=1000)
    for i in range(3):
        schedule = schedule.submitted(Entry(i, 10))
    schedule, joining = schedule.admitted()
    assert _ids(joining) == [0, 1]
    assert _ids(schedule.running) == [0, 1] and _ids(schedule.waiting) == [2]
    schedule, joining = schedule.admitted()
    assert joining == ()  # the batch is full: nobody joins until someone leaves


def test_admits_up_to_the_reserved_tokens() -> None:
    schedule = Schedule(max_sequences=8, max_tokens=100)
    for i, tokens in enumerate((40, 50, 20)):
        schedule = schedule.submitted(Entry(i, tokens))
    schedule, joining = schedule.admitted()
    assert _ids(joining) == [0, 1] and schedule.reserved == 90


def test_the_queue_is_fair_no_later_sequence_overtakes_one_that_does_not_fit() -> None:
    schedule = Schedule(max_sequences=8, max_tokens=100)
    schedule = schedule.submitted(Entry(0, 60)).submitted(Entry(1, 60)).submitted(Entry(2, 5))
    schedule, joining = schedule.admitted()
    assert _ids(joining) == [0]  # 2 would fit, but 1 is ahead of it
    assert _ids(schedule.waiting) == [1, 2]


def test_finished_sequences_leave_and_waiting_ones_join_between_steps() -> None:
    schedule = Schedule(max_sequences=2, max_tokens=1000)
    for i in range(4):
        schedule = schedule.submitted(Entry(i, 10))
    schedule, _ = schedule.admitted()
    schedule = schedule.left(0)
    assert _ids(schedule.running) == [1]
    schedule, joining = schedule.admitted()
    assert _ids(joining) == [2] and _ids(schedule.running) == [1, 2] and _ids(schedule.waiting) == [3]


def test_a_cancelled_waiting_sequence_leaves_the_queue() -> None:
    schedule = Schedule(max_sequences=1, max_tokens=1000).submitted(Entry(0, 10)).submitted(Entry(1, 10))
    schedule, _ = schedule.admitted()
    schedule = schedule.left(1)
    assert schedule.waiting == () and _ids(schedule.running) == [0]
    assert schedule.left(42) == schedule  # unknown: unchanged


def test_a_sequence_that_could_never_fit_is_refused_when_submitted() -> None:
    schedule = Schedule(max_sequences=4, max_tokens=100)
    assert not schedule.fits(Entry(0, 101))
    with pytest.raises(ValueError, match="101 tokens exceeds the batch's 100"):
        schedule.submitted(Entry(0, 101))


def test_it_is_deterministic_and_leaves_the_old_schedule_untouched() -> None:
    start = Schedule(max_sequences=2, max_tokens=50).submitted(Entry(0, 30)).submitted(Entry(1, 30))
    first, second = start.admitted(), start.admitted()
    assert first == second
    assert _ids(start.waiting) == [0, 1] and start.running == ()
