"""What the monitor's metrics and detectors read: a model's stored rows as tables, one column per feature.

The store (`wharf.monitor.store`) keeps, per model (the InferenceService's model name, TrustyAI's `modelId`), the
rows of every logged inference (request features and response outputs, paired by event id) and of every uploaded
reference set (a data tag such as `TRAINING`), and the ground-truth labels that arrive later by request id. The
metrics (`wharf.monitor.metrics`) and detectors see them only through `Rows`, as pandas DataFrames whose columns
are the model's input and output names (after any renaming with `POST /info/names`), so that they never depend on
how rows are stored.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

#: The column of a labelled table holding the ground truth of output column `name`.
GROUND_TRUTH_PREFIX = "ground_truth:"


def ground_truth(name: str) -> str:
    """The column holding the ground truth of output `name` in `Rows.labelled`."""
    return f"{GROUND_TRUTH_PREFIX}{name}"


class Rows(Protocol):
    """A model's stored rows. Each method raises `wharf.errors.NotFound` naming what is missing (the model, the
    tag) rather than answering an empty table."""

    def input_names(self, model: str) -> list[str]:
        """The model's input columns, in order."""
        ...

    def output_names(self, model: str) -> list[str]:
        """The model's output columns, in order."""
        ...

    def reference(self, model: str, tag: str) -> pd.DataFrame:
        """The rows uploaded with data tag `tag`: input and output columns."""
        ...

    def inferences(self, model: str, last: int | None = None) -> pd.DataFrame:
        """The latest `last` logged inference rows (all when None), oldest first: input and output columns."""
        ...

    def labelled(self, model: str, last: int | None = None) -> pd.DataFrame:
        """The latest `last` logged inference rows that have ground truth, oldest first: input and output columns,
        and `ground_truth(output)` for each output."""
        ...
