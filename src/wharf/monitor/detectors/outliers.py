"""Outlier detection: a scikit-learn detector fitted on a model's reference data, scoring logged rows.

`OutlierDetector.fit` takes the reference rows (a DataFrame of the model's input columns, or an array) and fits
scikit-learn's `IsolationForest` (default) or `EllipticEnvelope` (a robust Mahalanobis distance) with
`contamination`, the share of reference rows that score above the threshold (scikit-learn's own rule: the
threshold is that quantile of the reference rows' scores). Reference rows with a missing or infinite value are left
out of the fit; at most `max_rows` rows (a seeded sample) are fitted.

`score` answers, per row:
- `instance_score`: scikit-learn's `-score_samples`, higher meaning more unusual: for the isolation forest the
  anomaly score 2^(-mean path length / c(256)), in (0, 1], near 0.5 for ordinary rows and towards 1 for rows easily
  isolated; for the elliptic envelope the squared Mahalanobis distance from the robust mean;
- `is_outlier`: `instance_score > threshold` (what the estimator's own `predict` calls -1), or a feature out of the
  reference's range: its feature score above `max_z` and above that of every reference row. The rule is there
  for the isolation forest, which cannot see past the range of the rows its trees were grown on: a value 20
  standard deviations out lands in the same leaf as the reference's most extreme one, and scores like it. No
  reference row breaks it, so the share of reference rows flagged stays `contamination`;
- `feature_score`: per feature, |x - reference mean| / reference standard deviation, how many standard deviations
  of the reference the value lies from its mean (a constant reference column: the distance in the column's units),
  so the largest one points at the feature that made the row unusual.
A row with a missing or infinite value is an outlier with instance score +inf.

Cost (scikit-learn 1.9, 100 trees, 4 or 64 features, one core of a busy two-core machine): the isolation forest
costs about 9 ms a call plus 5 to 10 µs a row, so 13 to 19 µs a row in batches of 1,000, 90 to 130 µs in batches
of 100: score rows in batches, off the request path. The elliptic envelope scores 1 to 2 µs a row in batches of
1,000, but its fit (MinCovDet) takes seconds (14 s for 1,000 rows of 64 features): fit in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest

from wharf.errors import InvalidInput

Method = Literal["isolation_forest", "elliptic_envelope"]


@dataclass(frozen=True, slots=True)
class OutlierScores:
    """What `OutlierDetector.score` found for each row (see the module's docstring)."""

    is_outlier: np.ndarray  # bool [rows]
    instance_score: np.ndarray  # float64 [rows]
    feature_score: np.ndarray  # float64 [rows, features]

    def __len__(self) -> int:
        return len(self.is_outlier)

    def rows(self, start: int, stop: int) -> OutlierScores:
        """The scores of rows start..stop-1 (views, no copies)."""
        return OutlierScores(
            self.is_outlier[start:stop], self.instance_score[start:stop], self.feature_score[start:stop]
        )

    def data(self, feature_score: bool = True) -> dict[str, Any]:
        """The data of an outlier event, as alibi-detect's detectors answer: lists with one item per row,
        `is_outlier` as 0 or 1."""
        data: dict[str, Any] = {
            "is_outlier": self.is_outlier.astype(np.int64).tolist(),
            "instance_score": self.instance_score.tolist(),
        }
        if feature_score:
            data["feature_score"] = self.feature_score.tolist()
        return data


class OutlierDetector:
    """A fitted outlier detector over `columns`; make it with `fit`."""

    def __init__(
        self,
        estimator: IsolationForest | EllipticEnvelope,
        columns: list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        bounds: np.ndarray,
    ) -> None:
        self.estimator = estimator
        self.columns = columns
        #: Rows whose instance score is above it are outliers.
        self.threshold = float(-estimator.offset_)
        #: Per feature, the feature score above which a row is out of the reference's range.
        self.bounds = bounds
        self._mean = mean
        self._scale = scale

    @classmethod
    def fit(
        cls,
        reference: pd.DataFrame | np.ndarray,
        method: Method = "isolation_forest",
        contamination: float = 0.01,
        seed: int = 0,
        max_rows: int = 10_000,
        max_z: float = 6.0,
    ) -> OutlierDetector:
        """A detector fitted on `reference` rows (its columns are the features, in order); InvalidInput names a
        column that is not numeric, an unknown method, or too few usable rows."""
        if method not in get_args(Method):
            raise InvalidInput(f"outlier method {method!r} is not one of {', '.join(get_args(Method))}")
        if not 0 < contamination <= 0.5:
            raise InvalidInput(f"outlier contamination must be in (0, 0.5], got {contamination}")
        columns, rows = _numeric(reference)
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) < 2:
            raise InvalidInput(
                f"outlier detection needs at least 2 reference rows without missing values, got {len(rows)}"
            )
        if len(rows) > max_rows:
            rows = rows[np.random.default_rng(seed).choice(len(rows), max_rows, replace=False)]
        estimator: IsolationForest | EllipticEnvelope
        if method == "isolation_forest":
            estimator = IsolationForest(contamination=contamination, random_state=seed)
        else:
            estimator = EllipticEnvelope(contamination=contamination, random_state=seed)
        estimator.fit(rows)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        bounds = np.maximum(max_z, (np.abs(rows - mean) / scale).max(axis=0))
        return cls(estimator, columns, mean, scale, bounds)

    def score(self, rows: np.ndarray) -> OutlierScores:
        """The scores of `rows` [rows, features], features in `columns` order (one call of the estimator)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            raise InvalidInput(
                f"outlier detection takes rows of {len(self.columns)} features ({', '.join(self.columns)}), "
                f"got shape {list(rows.shape)}"
            )
        with np.errstate(invalid="ignore"):
            feature_score = np.abs(rows - self._mean) / self._scale
        finite = np.isfinite(rows).all(axis=1)
        if finite.all():
            instance_score = -self.estimator.score_samples(rows)
        else:
            instance_score = np.full(len(rows), np.inf)
            if finite.any():
                instance_score[finite] = -self.estimator.score_samples(rows[finite])
        is_outlier = (instance_score > self.threshold) | (feature_score > self.bounds).any(axis=1)
        return OutlierScores(is_outlier, instance_score, feature_score)


def _numeric(reference: pd.DataFrame | np.ndarray) -> tuple[list[str], np.ndarray]:
    """The reference's column names and its rows as float64."""
    if isinstance(reference, pd.DataFrame):
        other = [str(name) for name, dtype in reference.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
        if other:
            raise InvalidInput(f"outlier detection takes numeric columns; not numeric: {', '.join(other)}")
        return [str(name) for name in reference.columns], reference.to_numpy(dtype=np.float64)
    rows = np.asarray(reference)
    if rows.ndim != 2 or rows.dtype.kind not in "biuf":
        raise InvalidInput(
            f"outlier detection takes reference rows [rows, features] of numbers, got {rows.dtype} {list(rows.shape)}"
        )
    return [f"input-{i}" for i in range(rows.shape[1])], rows.astype(np.float64)
