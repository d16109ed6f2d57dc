"""A partition's committed offset moves only past batches that are done, and all those before them."""

from __future__ import annotations

from wharf.eventing.lanes import Batch, Lane


def test_offsets_move_past_done_batches_in_order() -> None:
    lane = Lane("t", 0)
    first, second, third = Batch(10, 12, 3), Batch(13, 13, 1), Batch(14, 19, 6)
    for batch in (first, second, third):
        lane.add(batch)
    assert lane.to_commit() is None
    assert lane.finished(second) == 0  # the first is still in flight
    assert lane.to_commit() is None and lane.pending() == 10
    assert lane.finished(first) == 4
    assert lane.to_commit() == 14
    lane.committed = 14
    assert lane.to_commit() is None
    assert lane.finished(third) == 6 and lane.to_commit() == 20 and lane.pending() == 0
