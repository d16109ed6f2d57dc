"""A metric's result and TrustyAI's answer shape.

A result is one value (a group fairness metric) or one value per column (a drift metric, `namedValues`), the
bounds the value should stay within and whether it left them (`outsideBounds`; for a per-column metric, whether any
column did, with each column's own verdict in Wharf's `namedOutsideBounds`), and a sentence saying what this value
means (`specificDefinition`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Bounds:
    """The range a metric's value should stay within."""

    lower: float
    upper: float

    def outside(self, value: float) -> bool:
        return not self.lower <= value <= self.upper


@dataclass(frozen=True, slots=True)
class Result:
    """One computation of a metric named `name` (TrustyAI's metric name, e.g. "SPD")."""

    name: str
    bounds: Bounds
    outside_bounds: bool
    definition: str
    value: float | None = None
    named_values: Mapping[str, float] | None = None
    named_outside_bounds: Mapping[str, bool] | None = None

    @classmethod
    def single(cls, name: str, bounds: Bounds, value: float, definition: str) -> Result:
        """A one-value result (a fairness or performance metric): outside its bounds when `value` is."""
        return cls(name=name, bounds=bounds, outside_bounds=bounds.outside(value), definition=definition, value=value)

    def answer(self, now: datetime | None = None) -> dict[str, Any]:
        """TrustyAI's answer (`BaseMetricResponse`), with `namedOutsideBounds` added for per-column metrics."""
        thresholds: dict[str, Any] = {
            "lowerBound": self.bounds.lower,
            "upperBound": self.bounds.upper,
            "outsideBounds": self.outside_bounds,
        }
        if self.named_outside_bounds is not None:
            thresholds["namedOutsideBounds"] = dict(self.named_outside_bounds)
        return {
            "timestamp": timestamp(now or datetime.now(UTC)),
            "type": "metric",
            "name": self.name,
            "id": str(uuid.uuid4()),
            "value": self.value,
            "namedValues": None if self.named_values is None else dict(self.named_values),
            "specificDefinition": self.definition,
            "thresholds": thresholds,
        }


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as TrustyAI's answers give their dates."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
