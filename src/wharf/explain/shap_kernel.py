"""Kernel SHAP (shap's KernelExplainer): contributions of any model's features, estimated by calling the predictor
over the protocol on synthetic rows (the explained row with some features replaced by background values).

One predictor call per explain request, whatever its number of rows. shap explains row by row and asks its model
function, for each row, for the row itself and then for all of the row's synthetic samples at once. The explainer
runs shap's explanation of the rows twice, seeded alike (`seeding`): the first run records what shap asks for
(answering zeros, and stopping each row before it solves); one predictor call answers all of it; the second run
answers shap from that answer, and checks that it is asked for the same rows. Drawing the samples twice costs
little beside the call, which carries nSamples x background rows per explained row (at most, for rows whose
features all differ from the background's), plus the row itself.

Every feature gets an estimate (no L1 feature selection); the estimates add up, with the base value (the mean
output over the background, one predictor call at load time), to the model's output for the row (the row's own
answer, in the same call). For the same seed, rows and background, the values are those of shap's own
`KernelExplainer(f, background).shap_values(rows, nsamples=nSamples, l1_reg=False)` after `np.random.seed(seed)`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

import numpy as np
import shap

from wharf.explain.attribution import explanation
from wharf.explain.features import feature_rows
from wharf.explain.predictor import PROBABILITIES, Predictor
from wharf.explain.seeding import seeded
from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import InferRequest

METHOD = "shap.kernel"
ModelFunction = Callable[[np.ndarray], np.ndarray]


class _Sampled(Exception):
    """Stops shap's explanation of a row once it has asked for the row's synthetic samples."""


class KernelShap:
    """Kernel SHAP of the predictor's explained output, against `background` rows."""

    def __init__(
        self,
        explainer: str,
        predictor: Predictor,
        background: np.ndarray,
        feature_names: Sequence[str],
        n_samples: int,
        seed: int,
    ) -> None:
        self.explainer = explainer
        self.predictor = predictor
        self.feature_names = list(feature_names)
        self.n_samples = n_samples
        self.seed = seed
        self._answering = threading.local()  # the model function shap's copy in this thread calls
        self._shap = shap.KernelExplainer(self._model, background)  # calls the predictor: the base values

    def explain(self, request: InferRequest) -> Explanation:
        rows = feature_rows(request, self.feature_names, self.explainer)
        asked: list[list[np.ndarray]] = [[] for _ in rows]
        with seeded(self.seed):
            for row, calls in zip(rows, asked):
                self._explain_row(row, self._recording(calls))
        flat = [x for calls in asked for x in calls]
        answers = np.split(self.predictor(np.concatenate(flat)), np.cumsum([len(x) for x in flat])[:-1])
        replies = iter(answers)
        answered = [[next(replies) for _ in calls] for calls in asked]
        with seeded(self.seed):
            values = [self._explain_row(row, self._replaying(c, a)) for row, c, a in zip(rows, asked, answered)]
        space = "probability" if self.predictor.output == PROBABILITIES else "raw"
        predictions = np.concatenate([a[0] for a in answered])  # each row's first call: the row itself
        return explanation(METHOD, np.stack(values), self._shap.expected_value, predictions, self.feature_names, space)

    def _explain_row(self, row: np.ndarray, model: ModelFunction) -> np.ndarray | None:
        """shap's explanation of one row [features] (a copy of the explainer: explaining changes its attributes),
        asking `model`; None where `model` stopped it."""
        explainer = copy.copy(self._shap)
        self._answering.model = model
        try:
            return explainer.explain(row[np.newaxis, :], nsamples=self.n_samples, l1_reg=False)
        except _Sampled:
            return None
        finally:
            self._answering.model = None

    def _model(self, rows: np.ndarray) -> np.ndarray:
        model = getattr(self._answering, "model", None)
        return (model or self.predictor)(rows)

    def _recording(self, calls: list[np.ndarray]) -> ModelFunction:
        """A model function that keeps what it is asked and answers zeros, stopping the row at its samples."""
        outputs = self._shap.D if self._shap.vector_out else None

        def record(rows: np.ndarray) -> np.ndarray:
            calls.append(np.array(rows, dtype=np.float64))
            if len(calls) > 1:
                raise _Sampled
            return np.zeros((len(rows), outputs) if outputs else len(rows))

        return record

    @staticmethod
    def _replaying(calls: list[np.ndarray], answers: list[np.ndarray]) -> ModelFunction:
        """A model function that answers `calls` with `answers`, in order, refusing to be asked anything else."""
        pending = iter(zip(calls, answers))

        def replay(rows: np.ndarray) -> np.ndarray:
            asked, answer = next(pending, (None, None))
            if asked is None or answer is None or not np.array_equal(asked, rows):
                raise RuntimeError("Kernel SHAP drew other samples than it had drawn with the same seed")
            return answer

        return replay
