"""A `Rows` over pandas DataFrames, standing in for the monitor's store in the metrics' tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from wharf.errors import NotFound
from wharf.monitor.data import GROUND_TRUTH_PREFIX


@dataclass
class StoredModel:
    """A model's columns, reference sets by tag, and inferences (with `ground_truth(output)` columns, missing
    where no label came)."""

    inputs: list[str]
    outputs: list[str]
    references: dict[str, pd.DataFrame] = field(default_factory=dict)
    inferences: pd.DataFrame = field(default_factory=pd.DataFrame)


class FrameRows:
    """Implements `wharf.monitor.data.Rows` over `StoredModel`s."""

    def __init__(self, **models: StoredModel) -> None:
        self.models = models

    def _model(self, model: str) -> StoredModel:
        try:
            return self.models[model]
        except KeyError:
            raise NotFound(f"no model {model!r}") from None

    def input_names(self, model: str) -> list[str]:
        return list(self._model(model).inputs)

    def output_names(self, model: str) -> list[str]:
        return list(self._model(model).outputs)

    def reference(self, model: str, tag: str) -> pd.DataFrame:
        try:
            return self._model(model).references[tag]
        except KeyError:
            raise NotFound(f"model {model!r} has no reference data tagged {tag!r}") from None

    def inferences(self, model: str, last: int | None = None) -> pd.DataFrame:
        frame = self._model(model).inferences
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith(GROUND_TRUTH_PREFIX)])
        return frame if last is None else frame.tail(last)

    def labelled(self, model: str, last: int | None = None) -> pd.DataFrame:
        frame = self._model(model).inferences
        truth = [c for c in frame.columns if c.startswith(GROUND_TRUTH_PREFIX)]
        frame = frame.dropna(subset=truth) if truth else frame.iloc[:0]
        return frame if last is None else frame.tail(last)
