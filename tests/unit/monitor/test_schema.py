"""A model's columns: fitting payloads by name, renamed name and position; widening; renaming."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.monitor.payloads import Table
from wharf.monitor.schema import ModelSchema


def table(*names: str, datatype: str = "FP64", positional: bool = False, rows: int = 1) -> Table:
    columns = tuple(np.full(rows, float(i)) for i in range(len(names)))
    return Table(names, (datatype,) * len(names), columns, rows, positional)


def schema() -> ModelSchema:
    return ModelSchema.first(1, "m", table("a", "b", "c"), table("y", datatype="INT64"))


def test_columns_fit_by_name_in_any_order() -> None:
    fitted, inputs, outputs = schema().fit(table("c", "a", "b"), table("y", datatype="INT64"))
    assert [column[0] for column in inputs] == [1.0, 2.0, 0.0]  # a, b, c from where the payload had them
    assert fitted == schema() and outputs is not None


def test_a_positional_payload_fits_as_many_columns_by_position() -> None:
    _, inputs, _ = schema().fit(table("input-0-0", "input-0-1", "input-0-2", positional=True), None)
    assert [column[0] for column in inputs] == [0.0, 1.0, 2.0]
    with pytest.raises(InvalidInput, match="missing"):
        schema().fit(table("input-0-0", "input-0-1", positional=True), None)


def test_a_payload_that_does_not_fit_names_what_is_missing_and_unexpected() -> None:
    with pytest.raises(InvalidInput) as error:
        schema().fit(table("a", "b", "z"), None)
    assert "missing: ['c']" in error.value.message and "unexpected: ['z']" in error.value.message
    with pytest.raises(InvalidInput, match="the payload's outputs"):
        schema().fit(table("a", "b", "c"), table("y", "w"))


def test_renamed_columns_fit_by_either_name_and_names_stay_unique() -> None:
    renamed = schema().renamed({"a": "age"}, {"y": "approved"})
    assert renamed.columns == ["age", "b", "c", "approved"] and renamed.inputs.renames == {"a": "age"}
    renamed.fit(table("age", "b", "c"), None)
    renamed.fit(table("a", "b", "c"), None)
    with pytest.raises(InvalidInput, match=r"unknown inputs \['nope'\]"):
        schema().renamed({"nope": "x"}, {})
    with pytest.raises(InvalidInput, match="must be unique"):
        schema().renamed({"a": "b"}, {})
    assert renamed.renamed({}, {}).columns == ["a", "b", "c", "y"]  # a mapping replaces the one before


def test_numbers_widen_and_text_where_numbers_were_is_refused() -> None:
    ints = ModelSchema.first(1, "m", table("a", datatype="INT32"), None)
    assert ints.fit(table("a", datatype="INT64"), None)[0].inputs.datatypes == ("INT64",)
    wider, _, _ = ints.fit(table("a", datatype="FP32"), None)
    assert wider.inputs.datatypes == ("FP64",) and wider.fit(table("a", datatype="INT8"), None)[0] is wider
    with pytest.raises(InvalidInput, match="column 'a' holds INT32 values; a payload sent BYTES"):
        ints.fit(table("a", datatype="BYTES"), None)


def test_outputs_come_with_the_first_payload_that_has_them() -> None:
    no_outputs = ModelSchema.first(1, "m", table("a"), None)
    assert no_outputs.outputs is None
    fitted, _, outputs = no_outputs.fit(table("a"), table("y"))
    assert fitted.outputs is not None and fitted.outputs.names == ("y",) and outputs is not None
    with pytest.raises(InvalidInput, match="must be unique"):
        no_outputs.fit(table("a"), table("a"))


def test_round_trip_through_a_dict() -> None:
    renamed = schema().renamed({"a": "age"}, {})
    assert ModelSchema.from_dict(1, "m", renamed.as_dict()) == renamed
