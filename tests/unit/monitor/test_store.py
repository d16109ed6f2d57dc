"""The monitor's store: logged rows, reference rows, labels, retention, restarts, and reading speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests.unit.monitor.conftest import OpenStore, exchange, numbers
from wharf.errors import InvalidInput, NotFound, ServerBusy
from wharf.monitor.data import Rows, ground_truth
from wharf.monitor.payloads import Table

pytestmark = pytest.mark.anyio

FEATURES = ("a", "b", "c", "d")


def texts(name: str, *values: str) -> Table:
    return Table((name,), ("BYTES",), (np.array(values, dtype=object),), len(values), False)


async def test_logged_rows_read_back_as_a_frame_oldest_first(open_store: OpenStore) -> None:
    store = open_store()
    rows: Rows = store  # the seam the metrics read through (checked by type checkers)
    del rows
    store.add_exchange(exchange("r1", numbers(*FEATURES, rows=2), numbers("y", rows=2, datatype="INT64")))
    store.add_exchange(exchange("r2", numbers(*FEATURES, start=100), numbers("y", start=7, datatype="INT64")))
    await store.flush()
    frame = store.inferences("iris")
    assert list(frame.columns) == [*FEATURES, "y"] and frame["a"].tolist() == [0.0, 1.0, 100.0]
    assert frame["y"].dtype == np.int64 and frame["y"].tolist() == [0, 1, 7]
    assert store.inferences("iris", last=1)["a"].tolist() == [100.0]
    assert store.input_names("iris") == list(FEATURES) and store.output_names("iris") == ["y"]
    assert store.held[store.schema("iris").key].rows == 3 and store.counts["stored"] == 3
    assert store.request_ids("iris")[0][0] == "r1" and len(store.request_ids("iris")) == 3


async def test_error_answers_are_kept_but_not_read_as_what_the_model_answered(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("ok", numbers("a"), numbers("y")))
    store.add_exchange(exchange("failed", numbers("a", start=5), None, status=500))
    await store.flush()
    assert store.inferences("iris")["a"].tolist() == [0.0]
    assert store.held[store.schema("iris").key].rows == 2


async def test_text_columns(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", texts("city", "Oslo", "Lima"), texts("label", "a", "b")))
    await store.flush()
    frame = store.inferences("iris")
    assert frame["city"].tolist() == ["Oslo", "Lima"] and frame["label"].tolist() == ["a", "b"]


async def test_rows_that_do_not_fit_the_model_are_refused(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", numbers(*FEATURES), numbers("y")))
    with pytest.raises(InvalidInput, match="unexpected: \\['e'\\]"):
        store.add_exchange(exchange("r2", numbers("a", "b", "c", "e"), numbers("y")))
    with pytest.raises(InvalidInput, match="the outputs have 2 rows but the inputs have 1"):
        store.add_exchange(exchange("r3", numbers(*FEATURES), numbers("y", rows=2)))


async def test_reference_rows_by_tag(open_store: OpenStore) -> None:
    store = open_store()
    assert await store.add_reference("iris", "TRAINING", numbers(*FEATURES, rows=3), None) == 3
    frame = store.reference("iris", "TRAINING")
    assert frame["d"].tolist() == [30.0, 31.0, 32.0] and store.output_names("iris") == []
    assert await store.add_reference("iris", "TRAINING", numbers(*FEATURES), numbers("y")) == 1
    frame = store.reference("iris", "TRAINING")
    assert np.isnan(frame["y"][0]) and frame["y"].tolist()[3] == 0.0  # rows uploaded without outputs: NaN
    with pytest.raises(NotFound, match="no reference rows tagged 'TEST'; its tags are \\['TRAINING'\\]"):
        store.reference("iris", "TEST")
    with pytest.raises(NotFound, match="no model 'nope'.*\\['iris'\\]"):
        store.reference("nope", "TRAINING")
    assert store.held[store.schema("iris").key].tags == {"TRAINING": 4}


async def test_labels_by_request_id(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", numbers("a", rows=2), numbers("y", rows=2)))
    store.add_exchange(exchange("r2", numbers("a", start=50), numbers("y", start=50)))
    await store.flush()
    assert await store.add_labels("iris", [("r1", None, numbers("y", rows=2, start=1))]) == 2
    labelled = store.labelled("iris")
    assert list(labelled.columns) == ["a", "y", ground_truth("y")]
    assert labelled["y"].tolist() == [0.0, 1.0] and labelled[ground_truth("y")].tolist() == [1.0, 2.0]
    assert await store.add_labels("iris", [("r1", None, numbers("y", rows=2, start=9))]) == 2  # labelled again
    assert store.labelled("iris")[ground_truth("y")].tolist() == [9.0, 10.0]
    assert store.held[store.schema("iris").key].labelled == 2
    with pytest.raises(NotFound, match="no logged request 'r9'"):
        await store.add_labels("iris", [("r9", None, numbers("y"))])
    with pytest.raises(InvalidInput, match="request 'r2' has 1 rows; labels for 2 rows"):
        await store.add_labels("iris", [("r2", None, numbers("y", rows=2))])
    with pytest.raises(InvalidInput, match="the payload's outputs"):
        await store.add_labels("iris", [("r2", None, numbers("z"))])


async def test_renamed_columns_are_what_readers_see_and_survive_a_restart(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", numbers(*FEATURES), numbers("y")))
    await store.rename("iris", {"a": "sepal_length"}, {"y": "species"})
    assert list(store.inferences("iris").columns) == ["sepal_length", "b", "c", "d", "species"]
    store.close()
    assert open_store().input_names("iris") == ["sepal_length", "b", "c", "d"]


async def test_a_restart_keeps_every_row_reference_set_label_and_count(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", numbers(*FEATURES, rows=3), numbers("y", rows=3)))
    await store.add_reference("iris", "TRAINING", numbers(*FEATURES, rows=2), numbers("y", rows=2))
    await store.add_labels("iris", [("r1", None, numbers("y", rows=3))])
    before = (store.inferences("iris"), store.reference("iris", "TRAINING"), store.labelled("iris"))
    store.close()
    again = open_store()
    after = (again.inferences("iris"), again.reference("iris", "TRAINING"), again.labelled("iris"))
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)
    held = again.held[again.schema("iris").key]
    assert (held.rows, held.labelled, dict(held.tags)) == (3, 3, {"TRAINING": 2})


async def test_retention_by_rows_drops_the_oldest_and_counts_them(open_store: OpenStore) -> None:
    store = open_store(retention_rows=5)
    for i in range(2):
        store.add_exchange(exchange(f"r{i}", numbers("a", rows=2, start=10 * i), numbers("y", rows=2)))
    await store.flush()
    await store.add_labels("iris", [("r0", None, numbers("y", rows=2))])
    for i in range(2, 4):
        store.add_exchange(exchange(f"r{i}", numbers("a", rows=2, start=10 * i), numbers("y", rows=2)))
    await store.flush()
    assert store.inferences("iris")["a"].tolist() == [11.0, 20.0, 21.0, 30.0, 31.0]
    held = store.held[store.schema("iris").key]
    assert (held.rows, held.dropped, held.labelled) == (5, 3, 0)  # r0's labels went with its rows
    assert store.counts["dropped_rows"] == 3
    store.close()
    assert open_store(retention_rows=5).held[1].dropped == 3


async def test_retention_by_days_drops_old_rows_when_checked(open_store: OpenStore) -> None:
    now = time.time()
    store = open_store()
    store.add_exchange(exchange("old", numbers("a"), numbers("y"), at=now - 40 * 86400))
    store.add_exchange(exchange("new", numbers("a", start=1), numbers("y"), at=now - 86400))
    await store.flush()
    store.close()
    later = open_store(retention_days=30)  # rows past their days are looked for on start, then every minute
    await later.flush()
    assert later.inferences("iris")["a"].tolist() == [1.0] and later.counts["dropped_days"] == 1


async def test_too_many_waiting_rows_are_refused(open_store: OpenStore) -> None:
    store = open_store(max_pending_rows=3, flush_interval_s=30.0, batch_rows=1000)
    store.add_exchange(exchange("r1", numbers("a", rows=3), numbers("y", rows=3)))
    with pytest.raises(ServerBusy, match="3 rows wait to be written"):
        store.add_exchange(exchange("r2", numbers("a"), numbers("y")))
    await store.flush()
    store.add_exchange(exchange("r2", numbers("a"), numbers("y")))


async def test_100000_rows_read_into_a_frame_well_under_a_second(open_store: OpenStore) -> None:
    store = open_store(batch_rows=20_000)
    for i in range(100):
        store.add_exchange(exchange(f"r{i}", numbers(*FEATURES, rows=1000, start=i), numbers("y", rows=1000)))
    await store.add_reference("iris", "TRAINING", numbers(*FEATURES, rows=100_000), numbers("y", rows=100_000))
    began = time.perf_counter()
    frame = store.inferences("iris")
    reference = store.reference("iris", "TRAINING")
    took = time.perf_counter() - began
    assert frame.shape == (100_000, 5) and reference.shape == (100_000, 5)
    assert took < 1.0, f"reading 2 x 100,000 rows took {took:.2f} s"
