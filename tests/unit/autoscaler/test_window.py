"""The sliding window of timed samples."""

from __future__ import annotations

import pytest

from wharf.autoscaler.window import SampleWindow


def test_average_and_maximum_cover_the_samples_of_the_last_span() -> None:
    window = SampleWindow(3.0)
    for now, value in enumerate([4.0, 8.0, 1.0, 2.0]):
        window.add(now, value)
    assert window.average(3.0) == pytest.approx((8 + 1 + 2) / 3)  # (0, 3]: the sample at 0 has aged out
    assert window.maximum(3.0) == 8.0
    assert window.maximum(4.0) == 2.0
    assert window.average(6.0) == window.maximum(6.0) == 0.0


def test_a_window_not_yet_full_averages_what_it_has() -> None:
    window = SampleWindow(60.0)
    window.add(100.0, 30.0)
    assert window.average(100.0) == 30.0


def test_zeros_average_exactly_zero() -> None:
    window = SampleWindow(10.0)
    for now, value in enumerate([0.1, 0.2, 0.3] + [0.0] * 10):
        window.add(now, value)
    assert window.average(12.0) == 0.0


def test_refuses_time_going_backwards_and_an_empty_span() -> None:
    window = SampleWindow(1.0)
    window.add(5.0, 1.0)
    with pytest.raises(ValueError, match="before the last one"):
        window.add(4.0, 1.0)
    with pytest.raises(ValueError, match="more than 0 s"):
        SampleWindow(0.0)
