"""The last hour of each revision's traffic and scaling, and of the model monitor's figures, for the web console.

Nothing else in the control plane keeps time series: the gateway pushes a snapshot of its sliding window
(`RevisionStats`), and the autoscaler's state is a set of Prometheus gauges (`ControlMetrics`). The daemon hands
both to `History.observe` once a resync (every second). From them it keeps:
- each revision's live figures (`live`): requests/s over the last `LIVE_S` seconds (the difference of the
  gateway's answered-request counts, on the gateway's clock), the window's error ratio and p50/p99 latency, requests
  in flight and queued, replicas desired and ready, panic mode, cold starts;
- every `interval_s` seconds (10), one sample of those figures per revision (requests/s then over the interval),
  appended to that revision's series.
The model monitor's figures are recorded the same way (`record`), by whoever reads them (`MonitorView`).

Series are columns of 8-byte floats (NaN for "none"), at most `keep_s / interval_s` samples each (360: an hour),
and at most `max_series` of them (the least recently written goes first), so memory stays under
`max_series` x 360 x 8 bytes per field (about 3 MB for 100 revisions). A series nobody wrote for `keep_s` is dropped.
Observing costs a few dictionary operations per revision a second, off the request path.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Metric

from wharf.control.metrics import ControlMetrics
from wharf.gateway.stats import RevisionStats

LIVE_S = 10.0  # the live requests/s cover about this many recent seconds
REVISION = "revision/"  # the prefix of a revision's series key
#: The fields of a revision's samples, in order.
REVISION_FIELDS = (
    "rps",
    "errorRatio",
    "p50Ms",
    "p99Ms",
    "inFlight",
    "queued",
    "desired",
    "ready",
    "panic",
    "coldStarts",
)


class Series:
    """One time series: a column of times and one column per field, oldest first."""

    __slots__ = ("fields", "times", "columns", "written")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.times = array("d")
        self.columns = [array("d") for _ in fields]
        self.written = 0.0

    def append(self, now: float, values: Mapping[str, float | None], capacity: int) -> None:
        self.times.append(now)
        for field, column in zip(self.fields, self.columns):
            value = values.get(field)
            column.append(math.nan if value is None else float(value))
        if len(self.times) > capacity:
            del self.times[0]
            for column in self.columns:
                del column[0]
        self.written = now

    def since(self, start: float) -> dict[str, list[float | None]]:
        """The samples taken at `start` or later, as columns (`t`: Unix seconds; None for a missing value)."""
        first = next((i for i, t in enumerate(self.times) if t >= start), len(self.times))
        shown: dict[str, list[float | None]] = {"t": list(self.times[first:])}
        for field, column in zip(self.fields, self.columns):
            shown[field] = [None if math.isnan(v) else v for v in column[first:]]
        return shown


@dataclass(frozen=True, slots=True)
class _Count:
    taken_at: float  # on the gateway's clock
    answered: int


class History:
    """Time series by key (`revision/NAME`, or whatever a recorder names), and the revisions' live figures."""

    def __init__(self, interval_s: float = 10.0, keep_s: float = 3600.0, max_series: int = 1000) -> None:
        self.interval_s = interval_s
        self.keep_s = keep_s
        self.max_series = max_series
        self.capacity = max(1, round(keep_s / interval_s))
        self._series: dict[str, Series] = {}
        self._counts: dict[str, deque[_Count]] = {}  # each revision's recent answered counts, for requests/s
        self._sampled: dict[str, _Count] = {}  # each revision's count at its last sample
        self._live: dict[str, dict[str, float | None]] = {}
        self._last_sample: float | None = None

    def observe(self, now: float, stats: Mapping[str, RevisionStats], metrics: ControlMetrics) -> None:
        """The gateway's latest snapshot and the control plane's metrics, at wall-clock time `now`: the live
        figures follow, and each revision's series gets a sample when `interval_s` has passed since the last."""
        scaling = scaling_states(metrics)
        live = {}
        for revision in {*stats, *scaling}:
            load = stats.get(revision)
            figures: dict[str, float | None] = {**_load(load), **scaling.get(revision, {})}
            figures["rps"] = self._recent_rps(revision, load) if load is not None else 0.0
            live[revision] = figures
        self._live = live
        for revision in set(self._counts) - set(stats):
            del self._counts[revision]
        if self._last_sample is not None and now - self._last_sample < self.interval_s:
            return
        self._last_sample = now
        for revision, figures in live.items():
            load = stats.get(revision)
            sample = {**figures, "rps": self._interval_rps(revision, load)}
            self.record(REVISION + revision, now, sample, REVISION_FIELDS)

    def live(self) -> dict[str, dict[str, float | None]]:
        """Each observed revision's live figures: the fields of `REVISION_FIELDS`, `coldStartSeconds`, and the
        gateway window's `requests` and `errors` (so that a service's error ratio can be summed over revisions)."""
        return self._live

    def record(
        self, key: str, now: float, values: Mapping[str, float | None], fields: Iterable[str] | None = None
    ) -> None:
        """Append a sample to series `key`, whose fields are `fields` (default: the keys of `values`); a series
        whose fields change starts afresh. Series nobody wrote for `keep_s` are dropped, and the least recently
        written beyond `max_series`."""
        names = tuple(fields if fields is not None else values)
        series = self._series.get(key)
        if series is None or series.fields != names:
            series = self._series[key] = Series(names)
        series.append(now, values, self.capacity)
        self._prune(now)

    def series(self, keys: Iterable[str] = (), prefixes: Iterable[str] = (), since: float = 0.0) -> dict[str, Any]:
        """The series named `keys` and those whose key starts with one of `prefixes`, from `since` on; a key
        without samples is left out."""
        wanted, starts = set(keys), tuple(prefixes)
        return {
            key: series.since(since)
            for key, series in self._series.items()
            if key in wanted or (starts and key.startswith(starts))
        }

    def _prune(self, now: float) -> None:
        stale = [key for key, series in self._series.items() if now - series.written > self.keep_s]
        for key in stale:
            del self._series[key]
        if len(self._series) > self.max_series:
            oldest = sorted(self._series, key=lambda key: self._series[key].written)
            for key in oldest[: len(self._series) - self.max_series]:
                del self._series[key]

    def _recent_rps(self, revision: str, load: RevisionStats) -> float:
        """Requests/s over the last `LIVE_S` seconds of gateway snapshots (0 until there are two)."""
        counts = self._counts.setdefault(revision, deque())
        if counts and load.answered < counts[-1].answered:  # the gateway counts the revision afresh
            counts.clear()
        if not counts or load.taken_at > counts[-1].taken_at:
            counts.append(_Count(load.taken_at, load.answered))
        while len(counts) > 2 and counts[-1].taken_at - counts[1].taken_at >= LIVE_S:
            counts.popleft()
        first, last = counts[0], counts[-1]
        elapsed = last.taken_at - first.taken_at
        return (last.answered - first.answered) / elapsed if elapsed > 0 else 0.0

    def _interval_rps(self, revision: str, load: RevisionStats | None) -> float | None:
        """Requests/s since the revision's previous sample (None at its first)."""
        if load is None:
            self._sampled.pop(revision, None)
            return 0.0
        count, before = _Count(load.taken_at, load.answered), self._sampled.get(revision)
        self._sampled[revision] = count
        if before is None or count.taken_at <= before.taken_at:
            return None
        answered = count.answered - before.answered if count.answered >= before.answered else count.answered
        return answered / (count.taken_at - before.taken_at)


def _load(load: RevisionStats | None) -> dict[str, float | None]:
    """The figures of a gateway snapshot (none yet: no requests)."""
    if load is None:
        return {"requests": 0, "errors": 0, "errorRatio": 0.0, "p50Ms": None, "p99Ms": None, "inFlight": 0, "queued": 0}
    return {
        "requests": load.requests,
        "errors": load.errors,
        "errorRatio": load.error_rate,
        "p50Ms": load.p50_ms,
        "p99Ms": load.p99_ms,
        "inFlight": load.in_flight,
        "queued": load.queued,
    }


def scaling_states(metrics: ControlMetrics) -> dict[str, dict[str, float]]:
    """Per revision, what the autoscaler's gauges say now: replicas `desired` and `ready`, `panic` (1 or 0), and
    its cold starts (`coldStarts`, and `coldStartSeconds` in all), read through the metrics' own collectors."""
    states: dict[str, dict[str, float]] = {}
    gauges = {"desired": metrics.desired, "ready": metrics.ready, "panic": metrics.panic}
    for field, gauge in gauges.items():
        for sample in _samples(gauge.collect()):
            states.setdefault(sample.labels["revision"], {})[field] = sample.value
    suffixes = {"_count": "coldStarts", "_sum": "coldStartSeconds"}
    for sample in _samples(metrics.cold_start.collect()):
        field = next((f for suffix, f in suffixes.items() if sample.name.endswith(suffix)), None)
        if field is not None:
            states.setdefault(sample.labels["revision"], {})[field] = sample.value
    return states


def _samples(families: Iterable[Metric]) -> Iterable[Any]:
    return (sample for family in families for sample in family.samples)
