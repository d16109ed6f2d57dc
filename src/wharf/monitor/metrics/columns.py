"""A model's columns as the metrics see them: which exist (the model's inputs and outputs, from `Rows`) and which
kind each is. A numeric column holds numbers (not booleans); a categorical one anything but floats (booleans,
integers, strings)."""

from __future__ import annotations

import pandas as pd

from wharf.errors import InvalidInput
from wharf.monitor.data import Rows


def known(rows: Rows, model: str) -> list[str]:
    """The model's inputs, then its outputs (NotFound for an unknown model)."""
    return [*rows.input_names(model), *rows.output_names(model)]


def require(name: str, among: list[str], field: str, model: str, what: str = "column") -> None:
    """InvalidInput naming `field` unless `name` is one of `among`."""
    if name not in among:
        raise InvalidInput(f"{field}: model {model!r} has no {what} {name!r} (its {what}s: {', '.join(among)})")


def require_outcome(rows: Rows, model: str, outcome: str) -> None:
    """InvalidInput naming `outcomeName` unless `outcome` is one of the model's outputs (NotFound for an unknown
    model)."""
    require(outcome, rows.output_names(model), "outcomeName", model, "output")


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def is_categorical(column: pd.Series) -> bool:
    return not pd.api.types.is_float_dtype(column)


def numbers(column: pd.Series) -> pd.Series:
    """The column's numbers; values that are not numbers count as missing and are dropped."""
    return pd.to_numeric(column, errors="coerce").dropna()
