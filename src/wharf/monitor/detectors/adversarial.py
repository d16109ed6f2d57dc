"""Adversarial detection by feature squeezing (Xu, Evans and Qi, NDSS 2018), model-agnostic: the model's answer on
the rows it was sent is compared with its answers on squeezed copies of them (`wharf.monitor.detectors.squeezers`).

An honest input and its squeezed copy mostly get the same answer; an adversarial example, pushed just across a
decision boundary by a perturbation that squeezing takes away in part, often does not. A row's score is the
largest L1 distance between the model's probability vector on the row and on any of its squeezed copies (in
[0, 2]); it is adversarial when the score is above the threshold. `AdversarialDetector.fit` sets the threshold on
clean rows for a target false-positive rate (`threshold_at`).

The model is called through `predict`, an async function from rows to probabilities [rows, classes] (for a model
behind Wharf's gateway: `wharf.monitor.detectors.gateway.gateway_predictor`): one call per `score`, with the rows
and every squeezed copy of them together (rows x (1 + squeezers)).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.monitor.detectors.squeezers import Squeezer

Predict = Callable[[np.ndarray], Awaitable[np.ndarray]]  # rows [rows, ...] -> probabilities [rows, classes]


@dataclass(frozen=True, slots=True)
class AdversarialScores:
    """What `AdversarialDetector.score` found for each row."""

    is_adversarial: np.ndarray  # bool [rows]
    instance_score: np.ndarray  # float64 [rows]: the largest of by_squeezer
    by_squeezer: np.ndarray  # float64 [rows, squeezers]: L1 distance of the answers on the row and its squeezed copy

    def __len__(self) -> int:
        return len(self.is_adversarial)

    def rows(self, start: int, stop: int) -> AdversarialScores:
        """The scores of rows start..stop-1 (views, no copies)."""
        return AdversarialScores(
            self.is_adversarial[start:stop], self.instance_score[start:stop], self.by_squeezer[start:stop]
        )

    def data(self) -> dict[str, Any]:
        """The data of an adversarial event, as alibi-detect's adversarial detectors answer: lists with one item per
        row, `is_adversarial` as 0 or 1."""
        return {
            "is_adversarial": self.is_adversarial.astype(np.int64).tolist(),
            "instance_score": self.instance_score.tolist(),
        }


def threshold_at(clean_scores: np.ndarray, fpr: float) -> float:
    """The threshold above which at most a share `fpr` of clean rows like `clean_scores` is expected to score:
    the ceil((n + 1)(1 - fpr))-th smallest of the n clean scores (the split-conformal quantile, whose expected
    false-positive rate on new clean rows is at most `fpr`). InvalidInput when n is too small for `fpr`."""
    if not 0 < fpr < 1:
        raise InvalidInput(f"the false-positive rate must be in (0, 1), got {fpr}")
    n = len(clean_scores)
    rank = math.ceil((n + 1) * (1 - fpr))
    if rank > n:
        raise InvalidInput(
            f"a false-positive rate of {fpr} needs at least {math.ceil((1 - fpr) / fpr)} clean rows, got {n}"
        )
    return float(np.partition(np.asarray(clean_scores, dtype=np.float64), rank - 1)[rank - 1])


async def squeezing_distances(predict: Predict, squeezers: Sequence[Squeezer], rows: np.ndarray) -> np.ndarray:
    """[rows, squeezers]: the L1 distance between `predict`'s answer on each row and on each squeezed copy of it
    (one call of `predict`)."""
    rows = np.asarray(rows, dtype=np.float64)
    n = len(rows)
    answers = np.asarray(await predict(np.concatenate([rows, *(squeeze(rows) for squeeze in squeezers)])))
    if answers.ndim != 2 or len(answers) != n * (1 + len(squeezers)) or answers.dtype.kind not in "biuf":
        raise InvalidInput(
            f"adversarial detection needs probabilities [rows, classes] for {n * (1 + len(squeezers))} rows, "
            f"the predictor answered {answers.dtype} {list(answers.shape)}"
        )
    answers = answers.astype(np.float64, copy=False).reshape(1 + len(squeezers), n, -1)
    return np.abs(answers[1:] - answers[0]).sum(axis=2).T


class AdversarialDetector:
    """Feature squeezing with `squeezers` on the model `predict` calls; rows scoring above `threshold` are
    adversarial. `fit` makes one with its threshold set on clean rows."""

    def __init__(self, predict: Predict, squeezers: Sequence[Squeezer], threshold: float) -> None:
        if not squeezers:
            raise InvalidInput("adversarial detection needs at least one squeezer")
        self.predict = predict
        self.squeezers = tuple(squeezers)
        self.threshold = threshold

    @classmethod
    async def fit(
        cls, predict: Predict, squeezers: Sequence[Squeezer], clean: np.ndarray, fpr: float = 0.05
    ) -> AdversarialDetector:
        """A detector whose threshold lets through a share `fpr` of clean rows like `clean` (one call of `predict`
        with all of them)."""
        distances = await squeezing_distances(predict, squeezers, clean)
        return cls(predict, squeezers, threshold_at(distances.max(axis=1), fpr))

    async def score(self, rows: np.ndarray) -> AdversarialScores:
        """The scores of `rows` [rows, ...] (one call of `predict`)."""
        distances = await squeezing_distances(self.predict, self.squeezers, rows)
        instance_score = distances.max(axis=1)
        return AdversarialScores(instance_score > self.threshold, instance_score, distances)
