"""`Inspector`: one service's detectors run over its logged inferences, and what they find reported
(`DetectorReports`: events and counts).

Both checks take a batch of logged inferences (`Logged`: an origin and its input rows) and score all their rows at
once: outliers in a worker thread (one call of the estimator, so the event loop keeps answering), adversarial
inputs on the inferences the sampler takes (one call of the model through `predict`). An inference with a finding
is reported by one event holding the scores of all its rows. Call them off the request path, from a task of the
monitor's event loop, with batches as large as the ingest has at hand (the estimator's cost per call is fixed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wharf.errors import WharfError
from wharf.monitor.detectors.adversarial import AdversarialDetector
from wharf.monitor.detectors.events import Detector, DetectorReports, Origin
from wharf.monitor.detectors.outliers import OutlierDetector
from wharf.monitor.detectors.sampling import Sampler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Logged:
    """A logged inference: what it was, and its input rows [rows, ...] (outliers: the detector's columns in order;
    adversarial: as the model takes them)."""

    origin: Origin
    rows: np.ndarray


class Inspector:
    """Runs `outliers` and `adversarial` (either may be None: not checked) over one service's inferences, the
    latter on those `sampler` takes (default: all); `feature_scores` says whether outlier events carry them."""

    def __init__(
        self,
        reports: DetectorReports,
        outliers: OutlierDetector | None = None,
        adversarial: AdversarialDetector | None = None,
        sampler: Sampler | None = None,
        feature_scores: bool = True,
        warn_every_s: float = 60.0,
    ) -> None:
        self.reports = reports
        self.outliers = outliers
        self.adversarial = adversarial
        self.sampler = sampler or Sampler(1.0)
        self.feature_scores = feature_scores
        self._warn_every_s = warn_every_s
        self._warned_at = -float("inf")

    async def inspect_outliers(self, logged: Sequence[Logged]) -> None:
        """Score every row of `logged` for outliers; report the inferences with one. Rows that are not of the
        detector's columns count as failed."""
        if self.outliers is None:
            return
        logged = self._shaped("outlier", logged, (len(self.outliers.columns),))
        if not logged:
            return
        scores = await asyncio.to_thread(self.outliers.score, np.concatenate([item.rows for item in logged]))
        self._report("outlier", logged, scores.is_outlier, lambda a, b: scores.rows(a, b).data(self.feature_scores))

    async def inspect_adversarial(self, logged: Sequence[Logged]) -> None:
        """Score the rows of the inferences of `logged` the sampler takes for adversarial inputs; report those
        with one. A model that cannot be called, or rows of another shape than the first inference's, count as
        failed (a warning says so now and then)."""
        if self.adversarial is None:
            return
        taken = [item for item in logged if self.sampler.take()]
        if not taken:
            return
        taken = self._shaped("adversarial", taken, taken[0].rows.shape[1:])
        try:
            scores = await self.adversarial.score(np.concatenate([item.rows for item in taken]))
        except WharfError as e:
            for item in taken:
                self.reports.count("adversarial", item.origin, 0, failed=len(item.rows))
            self._warn(f"adversarial detection could not call the model: {e.message}", taken[0].origin)
            return
        self._report("adversarial", taken, scores.is_adversarial, lambda a, b: scores.rows(a, b).data())

    def _report(
        self,
        detector: Detector,
        logged: Sequence[Logged],
        flagged: np.ndarray,
        data: Callable[[int, int], dict[str, Any]],
    ) -> None:
        """Count each inference's rows (`flagged` holds all of theirs, in order) and report those with a finding,
        the event's data being `data(start, stop)` of its rows."""
        start = 0
        for item in logged:
            stop = start + len(item.rows)
            detected = int(flagged[start:stop].sum())
            self.reports.count(detector, item.origin, stop - start, detected)
            if detected:
                self.reports.emit(detector, item.origin, data(start, stop))
            start = stop

    def _shaped(self, detector: Detector, logged: Sequence[Logged], shape: tuple[int, ...]) -> list[Logged]:
        """The inferences whose rows are [rows, *shape]; the others' rows count as failed (a warning says so)."""
        shaped = []
        for item in logged:
            if item.rows.shape[1:] == shape:
                shaped.append(item)
            else:
                self.reports.count(detector, item.origin, 0, failed=len(item.rows))
                self._warn(
                    f"{detector} detection takes rows [rows, {', '.join(map(str, shape))}], got {list(item.rows.shape)}",
                    item.origin,
                )
        return shaped

    def _warn(self, why: str, origin: Origin) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self._warn_every_s:
            self._warned_at = now
            log.warning(why, extra={"service": f"{origin.namespace}/{origin.service}"})
