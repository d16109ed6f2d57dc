"""Cost and utilisation of revisions: figures from what they used over a window, and whether each is over- or
under-scaled, with the numbers behind the verdict.

The input is `Bucket`s: what one revision used over a span (a minute, as the control plane records them) and the
scaling settings in effect then. `report` sums the buckets of each revision (its latest bucket's settings apply)
and derives its `Figures`:
- replicas: on average (replica-seconds over the seconds observed) and the most at once;
- idle share: idle replica-seconds over replica-seconds (what counts as idle is the recorder's to say);
- CPU: cores used on average, in all and per replica; memory: resident bytes per replica on average, and the most
  one replica held;
- load: requests per second, concurrency (requests in flight plus those waiting) on average and at most, and
  utilisation: the average of the metric the revision scales on over (average replicas x its per-replica target);
- needed: the replicas its busiest bucket asked for at the target (ceil(load / target); at least 1 with requests);
- waiting: requests waiting on average and at most, the share of the time some waited, and the trend of the
  queue: the later half of the buckets against the earlier half (`rising`, `falling`, `steady`; None from one);
- panic and maxReplicas: the share of the time the autoscaler panicked, and held the revision at maxReplicas;
- cold starts: how many, and how long they took on average.

Then the rules, in the order applied; the first that holds is the revision's verdict:
1. Observed for less than `min_observed_s`: `unjudged`.
2. Under-scaled, held at maxReplicas: maxReplicas is set, the autoscaler wanted it for at least `at_max_share` of
   the time, and requests waited for at least `queueing_share` of that time. Raise maxReplicas to the larger of
   what the autoscaler would choose at the average load (ceil(load / target)) and the replicas that take the
   average concurrency at containerConcurrency each, and at least one more; or, if the model can take more
   requests at once, raise containerConcurrency.
3. Under-scaled, panicking: the autoscaler was in panic mode for at least `panic_share` of the time (bursts
   outgrow the replicas before the stable window follows). Raise minReplicas to what the busiest bucket needed, at
   least one more than now (and at most maxReplicas).
4. Over-scaled, kept warm and idle: minReplicas is above what the busiest bucket needed and at least `idle_share`
   of the replica-seconds were idle. Lower minReplicas to that need (0 without requests: the revision scales to
   zero, and a request that finds it there waits a cold start).
5. Otherwise: `fits`.

Services are the sums of their revisions, every component's, with their revisions' verdicts. The report carries
the service graph's edges as it is given them (`edges`), for whoever shows the two together. Nothing here reads a
clock or does I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIB = 2**20
OVER_SCALED, UNDER_SCALED, FITS, UNJUDGED = "over-scaled", "under-scaled", "fits", "unjudged"


@dataclass(frozen=True, slots=True)
class Scale:
    """The scaling settings of a revision: the metric it scales on and its per-replica target (utilisation
    applied, as the autoscaler aims), its bounds (max 0: none) and containerConcurrency (0: no limit)."""

    metric: str = "concurrency"
    target: float = 70.0
    min_replicas: int = 0
    max_replicas: int = 0
    container_concurrency: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """What one revision used over a span. `..._seconds` fields other than the first are time integrals (for
    instance replica-seconds: replicas x seconds), `..._max` fields the most seen, `cold_start_seconds` the sum
    of its cold starts' durations."""

    seconds: float = 0.0  # observed
    replica_seconds: float = 0.0
    idle_replica_seconds: float = 0.0
    cpu_seconds: float = 0.0
    memory_byte_seconds: float = 0.0  # resident bytes of its replicas x seconds
    memory_max: int = 0  # bytes, of one replica
    requests: int = 0
    concurrency_seconds: float = 0.0  # (in flight + waiting) x seconds
    concurrency_max: float = 0.0
    waiting_seconds: float = 0.0  # waiting x seconds
    waiting_max: float = 0.0
    queueing_seconds: float = 0.0  # seconds with some request waiting
    panic_seconds: float = 0.0
    at_max_seconds: float = 0.0  # seconds the autoscaler wanted maxReplicas
    queueing_at_max_seconds: float = 0.0
    cold_starts: int = 0
    cold_start_seconds: float = 0.0
    replicas_max: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            *(
                max(mine, theirs) if name.endswith("_max") else mine + theirs
                for name, mine, theirs in zip(_USAGE_FIELDS, _values(self), _values(other), strict=True)
            )
        )


_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))


def _values(usage: Usage) -> tuple[Any, ...]:
    return tuple(getattr(usage, name) for name in _USAGE_FIELDS)


@dataclass(frozen=True, slots=True, order=True)
class RevisionKey:
    namespace: str
    service: str
    component: str
    revision: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """What `key` used over the span that began at `start` (seconds), under `scale`."""

    start: float
    key: RevisionKey
    scale: Scale
    usage: Usage


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where the rules draw their lines (see the module docstring)."""

    min_observed_s: float = 60.0
    at_max_share: float = 0.5
    queueing_share: float = 0.5
    panic_share: float = 0.1
    idle_share: float = 0.8


@dataclass(frozen=True, slots=True)
class Figures:
    """A revision's usage made comparable (see the module docstring); None where the figure has no meaning."""

    observed_s: float
    replicas_avg: float
    replicas_max: int
    replica_seconds: float
    idle_replica_seconds: float
    idle_share: float | None
    cpu_seconds: float
    cpu_cores_avg: float
    cpu_cores_per_replica: float | None
    memory_avg_bytes: float | None  # per replica
    memory_max_bytes: int
    requests: int
    requests_per_second: float
    concurrency_avg: float
    concurrency_max: float
    target: float
    utilisation: float | None
    needed_replicas: int
    waiting_avg: float
    waiting_max: float
    queueing_share: float
    waiting_trend: str | None
    panic_share: float
    at_max_share: float
    cold_starts: int
    cold_start_avg_s: float | None


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A verdict's rule, the sentence saying why with its numbers, and the settings it suggests (field: value)."""

    rule: str
    reason: str
    change: dict[str, int]


@dataclass(frozen=True, slots=True)
class RevisionCost:
    key: RevisionKey
    scale: Scale
    usage: Usage
    figures: Figures
    verdict: str
    recommendation: Recommendation | None


@dataclass(frozen=True, slots=True)
class ServiceCost:
    namespace: str
    service: str
    usage: Usage
    verdicts: tuple[str, ...]  # over-scaled, under-scaled: those of its revisions that have one


@dataclass(frozen=True, slots=True)
class Report:
    revisions: tuple[RevisionCost, ...]
    services: tuple[ServiceCost, ...]
    thresholds: Thresholds
    edges: tuple[Mapping[str, Any], ...] = field(default=())

    def document(self) -> dict[str, Any]:
        """The report as JSON-ready data, its keys in camelCase as the control API writes them."""
        return {
            "services": [
                {
                    "namespace": s.namespace,
                    "service": s.service,
                    "usage": camel_keys(dataclasses.asdict(s.usage)),
                    "verdicts": list(s.verdicts),
                }
                for s in self.services
            ],
            "revisions": [
                {
                    **camel_keys(dataclasses.asdict(r.key)),
                    "scale": camel_keys(dataclasses.asdict(r.scale)),
                    "figures": camel_keys(dataclasses.asdict(r.figures)),
                    "verdict": r.verdict,
                    "recommendation": None if r.recommendation is None else dataclasses.asdict(r.recommendation),
                }
                for r in self.revisions
            ],
            "thresholds": camel_keys(dataclasses.asdict(self.thresholds)),
            "edges": [dict(edge) for edge in self.edges],
        }


def report(
    buckets: Iterable[Bucket], thresholds: Thresholds = Thresholds(), edges: Sequence[Mapping[str, Any]] = ()
) -> Report:
    """Each revision's figures and verdict over `buckets`, their services' sums, and the service graph's `edges`."""
    by_revision: dict[RevisionKey, list[Bucket]] = {}
    for bucket in sorted(buckets, key=lambda b: b.start):
        by_revision.setdefault(bucket.key, []).append(bucket)
    revisions = tuple(_judge(key, spans, thresholds) for key, spans in sorted(by_revision.items()))
    services: dict[tuple[str, str], tuple[Usage, list[str]]] = {}
    for revision in revisions:
        name = (revision.key.namespace, revision.key.service)
        usage, verdicts = services.get(name, (Usage(), []))
        if revision.verdict in (OVER_SCALED, UNDER_SCALED) and revision.verdict not in verdicts:
            verdicts.append(revision.verdict)
        services[name] = (usage + revision.usage, verdicts)
    return Report(
        revisions,
        tuple(ServiceCost(ns, name, usage, tuple(v)) for (ns, name), (usage, v) in services.items()),
        thresholds,
        tuple(edges),
    )


def figures(spans: Sequence[Bucket]) -> Figures:
    """The figures of one revision's buckets, oldest first (their latest's scale applies)."""
    scale = spans[-1].scale
    u = _total(spans)
    seconds = u.seconds
    replicas = u.replica_seconds
    target = scale.target
    load = _load(u, scale)
    needed = max((_need(b.usage, scale) for b in spans), default=0)
    return Figures(
        observed_s=seconds,
        replicas_avg=_ratio(replicas, seconds),
        replicas_max=u.replicas_max,
        replica_seconds=replicas,
        idle_replica_seconds=u.idle_replica_seconds,
        idle_share=_per(u.idle_replica_seconds, replicas),
        cpu_seconds=u.cpu_seconds,
        cpu_cores_avg=_ratio(u.cpu_seconds, seconds),
        cpu_cores_per_replica=_per(u.cpu_seconds, replicas),
        memory_avg_bytes=_per(u.memory_byte_seconds, replicas),
        memory_max_bytes=u.memory_max,
        requests=u.requests,
        requests_per_second=_ratio(u.requests, seconds),
        concurrency_avg=_ratio(u.concurrency_seconds, seconds),
        concurrency_max=u.concurrency_max,
        target=target,
        utilisation=_ratio(load, _ratio(replicas, seconds) * target) if replicas else None,
        needed_replicas=needed,
        waiting_avg=_ratio(u.waiting_seconds, seconds),
        waiting_max=u.waiting_max,
        queueing_share=_ratio(u.queueing_seconds, seconds),
        waiting_trend=_trend(spans),
        panic_share=_ratio(u.panic_seconds, seconds),
        at_max_share=_ratio(u.at_max_seconds, seconds),
        cold_starts=u.cold_starts,
        cold_start_avg_s=_per(u.cold_start_seconds, u.cold_starts),
    )


def _judge(key: RevisionKey, spans: Sequence[Bucket], thresholds: Thresholds) -> RevisionCost:
    scale = spans[-1].scale
    usage = _total(spans)
    f = figures(spans)
    verdict, recommendation = FITS, None
    if f.observed_s < thresholds.min_observed_s:
        verdict = UNJUDGED
    elif (found := _held_at_max(usage, scale, f, thresholds)) is not None:
        verdict, recommendation = UNDER_SCALED, found
    elif (found := _panicking(scale, f, thresholds)) is not None:
        verdict, recommendation = UNDER_SCALED, found
    elif (found := _kept_warm(scale, f, thresholds)) is not None:
        verdict, recommendation = OVER_SCALED, found
    return RevisionCost(key, scale, usage, f, verdict, recommendation)


def _held_at_max(usage: Usage, scale: Scale, f: Figures, thresholds: Thresholds) -> Recommendation | None:
    """Rule 2."""
    at_max = usage.at_max_seconds
    if not scale.max_replicas or f.at_max_share < thresholds.at_max_share:
        return None
    if usage.queueing_at_max_seconds < thresholds.queueing_share * at_max:
        return None
    wanted = _replicas_for(_load(usage, scale), scale.target)
    if scale.container_concurrency:
        wanted = max(wanted, _replicas_for(f.concurrency_avg, scale.container_concurrency))
    wanted = max(wanted, scale.max_replicas + 1)
    trend = f" and {f.waiting_trend}" if f.waiting_trend else ""
    concurrency = (
        f"; or raise containerConcurrency from {scale.container_concurrency} if the model can take more requests"
        " at once"
        if scale.container_concurrency
        else ""
    )
    reason = (
        f"held at maxReplicas {scale.max_replicas} for {_percent(f.at_max_share)} of {_s(f.observed_s)}, with"
        f" requests waiting {_percent(_ratio(usage.queueing_at_max_seconds, at_max))} of that time: {f.waiting_avg:.3g}"
        f" waiting on average, at most {f.waiting_max:.3g}{trend}; {_load_words(f, scale)};"
        f" raise maxReplicas to {wanted}{concurrency}"
    )
    return Recommendation("held-at-max-replicas", reason, {"maxReplicas": wanted})


def _panicking(scale: Scale, f: Figures, thresholds: Thresholds) -> Recommendation | None:
    """Rule 3."""
    if f.panic_share < thresholds.panic_share:
        return None
    wanted = max(f.needed_replicas, scale.min_replicas + 1)
    if scale.max_replicas:
        wanted = min(wanted, scale.max_replicas)
    if wanted <= scale.min_replicas:
        return None  # minReplicas is already maxReplicas: rule 2's, when requests wait
    reason = (
        f"the autoscaler panicked {_percent(f.panic_share)} of {_s(f.observed_s)} (bursts beyond"
        f" {scale.min_replicas} ready replicas): concurrency at most {f.concurrency_max:.3g}, {f.concurrency_avg:.3g}"
        f" on average, against a target of {scale.target:.3g} a replica; at its busiest it needed"
        f" {f.needed_replicas}; raise minReplicas to {wanted}"
    )
    return Recommendation("panic", reason, {"minReplicas": wanted})


def _kept_warm(scale: Scale, f: Figures, thresholds: Thresholds) -> Recommendation | None:
    """Rule 4."""
    if scale.min_replicas <= f.needed_replicas or (f.idle_share or 0.0) < thresholds.idle_share:
        return None
    wanted = f.needed_replicas
    extra = scale.min_replicas - wanted
    memory = f" and about {extra} x {f.memory_avg_bytes / MIB:.0f} MiB resident" if f.memory_avg_bytes else ""
    cold = (
        f"; a request that finds it at zero waits a cold start ({f.cold_start_avg_s:.2g} s here)"
        if f.cold_start_avg_s is not None
        else "; a request that finds it at zero waits a cold start"
    )
    reason = (
        f"minReplicas {scale.min_replicas} kept {f.replicas_avg:.3g} replicas warm on average for {f.requests}"
        f" requests in {_s(f.observed_s)}: {f.idle_replica_seconds:.0f} of {f.replica_seconds:.0f} replica-seconds"
        f" idle ({_percent(f.idle_share or 0.0)}), {f.cpu_seconds:.3g} CPU-seconds{memory}; at its busiest it"
        f" needed {wanted}; lower minReplicas to {wanted}{cold if wanted == 0 else ''}"
    )
    return Recommendation("idle-min-replicas", reason, {"minReplicas": wanted})


def _load(usage: Usage, scale: Scale) -> float:
    """The average of the metric the revision scales on: concurrency, or requests per second."""
    if scale.metric == "rps":
        return _ratio(usage.requests, usage.seconds)
    return _ratio(usage.concurrency_seconds, usage.seconds)


def _need(usage: Usage, scale: Scale) -> int:
    """The replicas a span's load asks for at the target; at least one when it had requests."""
    wanted = _replicas_for(_load(usage, scale), scale.target)
    return max(wanted, 1 if usage.requests or usage.concurrency_max else 0)


def _trend(spans: Sequence[Bucket]) -> str | None:
    """Whether requests waited more in the later half of the spans than in the earlier half."""
    if len(spans) < 2:
        return None
    half = len(spans) // 2
    early, late = _total(spans[:half]), _total(spans[half:])
    before, after = _ratio(early.waiting_seconds, early.seconds), _ratio(late.waiting_seconds, late.seconds)
    margin = max(0.5, 0.2 * before)
    return "rising" if after > before + margin else "falling" if after < before - margin else "steady"


def _load_words(f: Figures, scale: Scale) -> str:
    """The load the revision scales on, on how many replicas, against what target."""
    load = (
        f"{f.requests_per_second:.3g} requests/s"
        if scale.metric == "rps"
        else f"concurrency {f.concurrency_avg:.3g} on average"
    )
    return f"{load} over {f.replicas_avg:.3g} replicas against a target of {scale.target:.3g} a replica"


def _total(spans: Sequence[Bucket]) -> Usage:
    return sum((b.usage for b in spans), Usage())


def _replicas_for(load: float, per_replica: float) -> int:
    """The replicas that carry `load` at `per_replica` each (a rounding error above a whole number is that number)."""
    return math.ceil(load / per_replica - 1e-9)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _per(part: float, whole: float) -> float | None:
    """`part` over `whole`; None, no figure, when `whole` is nothing."""
    return part / whole if whole else None


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s"


def camel_keys(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with their snake_case keys in camelCase, as the control API writes its JSON."""
    return {_camel_case(name): value for name, value in values.items()}


def _camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
