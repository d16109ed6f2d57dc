"""Cost and utilisation, as the control plane records it: every `sample_s` (WHARF_USAGE_SAMPLE_S) the recorder
reads what each running replica's process uses and what the gateway and the autoscaler say of each revision, adds
it to the revision's row of the current minute (usage_table.py), and keeps the latest figures for `wharf top` and
the control plane's /metrics.

What one sample of a revision counts, over the time since the sample before (at most two periods: a stalled loop
does not make one sample count for long):
- replica-seconds: its replicas that have a process (ready or starting), times that time;
- idle replica-seconds: all of them when the revision answered no request since the sample before and holds none
  now; else the replicas beyond those its requests occupy (in flight and waiting now, at least one);
- CPU seconds: what each replica's session (its process and the workers it starts) used since the sample before
  (telemetry/usage.py); a replica first seen counts what it used from its start, unless it started before this
  control plane did (adopted after a restart: an earlier daemon counted that); resident memory: its session's
  resident set now;
- requests: those the gateway answered since the sample before; concurrency: requests in flight plus those waiting
  in the activator, now; waiting: those in the activator, plus, with containerConcurrency, those in flight beyond
  what the ready replicas may take at once (the balancer holds them);
- panic and maxReplicas: whether the autoscaler panics, and wants maxReplicas, now (its gauges); cold starts: the
  cold starts it timed since the sample before.

Metrics (same labels as their rows: namespace, service, component, revision; per replica also `replica`):
`wharf_replica_cpu_seconds_total` (from each replica's start, restarts included),
`wharf_replica_resident_memory_bytes`, `wharf_revision_replica_seconds_total` and
`wharf_revision_idle_replica_seconds_total` (since this control plane started), `wharf_revision_concurrency`
(requests in flight and waiting, as last sampled) and `wharf_revision_concurrency_target` (the per-replica
concurrency the autoscaler aims at, utilisation applied; for a revision scaling on requests per second, its
containerConcurrency when it has one). Replicas and revisions that are gone leave the metrics.

A sample costs a pass over /proc (telemetry/usage.py: about 20 µs a process on the machine), read in a worker
thread, and one SQLite transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.control.backends import ReplicaState
from wharf.control.plan import COMPONENTS, ISVC_KIND, ServicePlan, service_plan
from wharf.control.reconciler import Reconciler
from wharf.control.store import Resource
from wharf.control.usage_table import UsageTable, minute_of
from wharf.errors import InvalidInput
from wharf.gateway.stats import RevisionStats
from wharf.telemetry.cost import RevisionKey, Scale, Thresholds, Usage, camel_keys, report
from wharf.telemetry.usage import ProcessUsage, session_usage

log = logging.getLogger(__name__)
Reader = Callable[[Iterable[int]], Mapping[int, ProcessUsage]]
_REVISION_LABELS = ["namespace", "service", "component", "revision"]


class UsageSettings(BaseSettings):
    """How usage is sampled and kept (WHARF_USAGE_*)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_USAGE_", extra="ignore")

    sample_s: float = Field(5.0, gt=0, description="how often replicas' processes and revisions' load are read")
    retention_s: float = Field(86400.0, gt=0, description="how long the per-minute rows are kept")
    min_observed_s: float = Field(60.0, ge=0, description="a revision observed for less gets no verdict")


@dataclass
class _Replica:
    """What the recorder knows of one replica's process."""

    pid: int
    cpu_seconds: float  # the session's, at the last reading
    cpu_total: float  # the counter: every reading's increase, from the replica's first start
    resident_bytes: int = 0
    cpu_cores: float = 0.0  # over the last interval


@dataclass
class _Revision:
    """What the recorder keeps of one revision between samples."""

    key: RevisionKey
    scale: Scale
    answered: int | None = None
    cold_starts: float = 0.0
    cold_start_seconds: float = 0.0
    replica_seconds: float = 0.0
    idle_replica_seconds: float = 0.0
    now: dict[str, Any] = field(default_factory=dict)  # the latest sample, for `top`


class UsageRecorder:
    """Samples the replicas and revisions of `reconciler` into `table`; `read` reads processes (by session leader),
    `clock` is monotonic, `wall` the wall clock (minutes are the wall clock's)."""

    def __init__(
        self,
        reconciler: Reconciler,
        table: UsageTable,
        settings: UsageSettings | None = None,
        read: Reader = session_usage,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.reconciler = reconciler
        self.table = table
        self.settings = settings or UsageSettings()
        self.read = read
        self.clock = clock
        self.wall = wall
        self.started = wall()
        self._last: float | None = None
        self._revisions: dict[str, _Revision] = {}
        self._replicas: dict[str, _Replica] = {}
        self._keys: dict[str, RevisionKey] = {}
        self._plans: dict[tuple[str, str, float, int], ServicePlan] = {}
        reconciler.metrics.registry.register(_UsageMetrics(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every `sample_s` until `stop`; the table is closed at the end."""
        try:
            while not stop.is_set():
                try:
                    replicas = self.reconciler.backend.replicas()
                    pids = [r.pid for r in replicas if r.pid]
                    self.sample(replicas, await asyncio.to_thread(self.read, pids))
                except Exception:  # one bad sample must not end the recording: the next one tries again
                    log.exception("sampling usage failed; the next sample retries")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.sample_s)
        finally:
            self.table.close()

    # -- one sample -----------------------------------------------------------------------------------------
    def sample(self, replicas: Sequence[ReplicaState], processes: Mapping[int, ProcessUsage]) -> None:
        """Count the time since the previous sample for every revision that has replicas or load, from `replicas`
        (the backend's) and `processes` (what their sessions use, by pid); write it to the current minute."""
        now, wall = self.clock(), self.wall()
        elapsed = 0.0 if self._last is None else min(now - self._last, 2 * self.settings.sample_s)
        self._last = now
        stats = self.reconciler.gateway.stats()
        by_revision: dict[str, list[ReplicaState]] = {}
        for replica in replicas:
            by_revision.setdefault(replica.revision, []).append(replica)
        gauges = _Gauges(self.reconciler.metrics)
        rows, seen = [], set()
        for name in sorted({*by_revision, *stats}):
            revision = self._revision(name)
            if revision is None:
                continue
            seen.add(name)
            usage = self._count(revision, by_revision.get(name, []), stats.get(name), gauges, processes, elapsed, wall)
            if usage.replica_seconds or usage.requests or usage.cold_starts or usage.concurrency_max:
                rows.append((revision.key, revision.scale, usage))
        self._revisions = {name: r for name, r in self._revisions.items() if name in seen}
        listed = {r.id for r in replicas}
        self._replicas = {rid: r for rid, r in self._replicas.items() if rid in listed}
        if rows:
            self.table.add(minute_of(wall), rows)
        self.table.prune(wall - self.settings.retention_s)

    def _count(
        self,
        revision: _Revision,
        replicas: list[ReplicaState],
        load: RevisionStats | None,
        gauges: _Gauges,
        processes: Mapping[int, ProcessUsage],
        elapsed: float,
        wall: float,
    ) -> Usage:
        name, scale = revision.key.revision, revision.scale
        running = [r for r in replicas if r.pid]
        ready = sum(r.ready for r in running)
        in_flight, queued, answered = (load.in_flight, load.queued, load.answered) if load else (0, 0, 0)
        previous = revision.answered
        requests = 0 if previous is None else answered - previous if answered >= previous else answered
        revision.answered = answered
        concurrency = in_flight + queued
        waiting = queued
        if scale.container_concurrency:
            waiting += max(0, in_flight - ready * scale.container_concurrency)
        idle = len(running) if not requests and not concurrency else max(0, len(running) - max(1, concurrency))
        desired = gauges.desired.get(name, len(running))
        at_max = bool(scale.max_replicas) and desired >= scale.max_replicas
        panicking = bool(gauges.panic.get(name))
        cold_starts, cold_seconds = gauges.cold_starts.get(name, (0.0, 0.0))
        new_cold = max(0.0, cold_starts - revision.cold_starts)
        new_cold_seconds = max(0.0, cold_seconds - revision.cold_start_seconds) if new_cold else 0.0
        revision.cold_starts, revision.cold_start_seconds = cold_starts, cold_seconds
        cpu, resident = 0.0, []
        for replica in running:
            used, size = self._process(replica, processes.get(replica.pid), elapsed)
            cpu += used
            resident.append(size)
        revision.replica_seconds += len(running) * elapsed
        revision.idle_replica_seconds += idle * elapsed
        revision.now = {
            "replicas": len(running),
            "ready": ready,
            "desired": desired,
            "inFlight": in_flight,
            "queued": queued,
            "waiting": waiting,
            "concurrency": concurrency,
            "requestsPerSecond": requests / elapsed if elapsed else 0.0,
            "panicking": panicking,
        }
        return Usage(
            seconds=elapsed,
            replica_seconds=len(running) * elapsed,
            idle_replica_seconds=idle * elapsed,
            cpu_seconds=cpu,
            memory_byte_seconds=sum(resident) * elapsed,
            memory_max=max(resident, default=0),
            requests=requests,
            concurrency_seconds=concurrency * elapsed,
            concurrency_max=concurrency,
            waiting_seconds=waiting * elapsed,
            waiting_max=waiting,
            queueing_seconds=elapsed if waiting else 0.0,
            panic_seconds=elapsed if panicking else 0.0,
            at_max_seconds=elapsed if at_max else 0.0,
            queueing_at_max_seconds=elapsed if at_max and waiting else 0.0,
            cold_starts=int(new_cold),
            cold_start_seconds=new_cold_seconds,
            replicas_max=len(running),
        )

    def _process(self, replica: ReplicaState, reading: ProcessUsage | None, elapsed: float) -> tuple[float, int]:
        """The CPU seconds `replica` used since the last reading, and its resident bytes (the last known when its
        process could not be read)."""
        known = self._replicas.get(replica.id)
        if reading is None:
            return 0.0, known.resident_bytes if known and known.pid == replica.pid else 0
        if known is not None and known.pid == replica.pid:
            used = max(0.0, reading.cpu_seconds - known.cpu_seconds)
            known.cpu_seconds, known.cpu_total = reading.cpu_seconds, known.cpu_total + used
            known.resident_bytes, known.cpu_cores = reading.resident_bytes, used / elapsed if elapsed else 0.0
            return used, reading.resident_bytes
        # a replica first seen, or its new process after a restart: what it used from its start
        total = (known.cpu_total if known else 0.0) + reading.cpu_seconds
        self._replicas[replica.id] = _Replica(replica.pid, reading.cpu_seconds, total, reading.resident_bytes)
        adopted = known is None and replica.started_at < self.started
        return 0.0 if adopted else reading.cpu_seconds, reading.resident_bytes

    # -- what revisions are ---------------------------------------------------------------------------------
    def _revision(self, name: str) -> _Revision | None:
        """The recorder's state of revision `name`, its scale as its service's spec says now; None for a revision
        of no stored service."""
        key = self._keys.get(name)
        if key is None:
            self._keys = self._stored_revisions()
            key = self._keys.get(name)
        store = self.reconciler.store
        resource = None if key is None else store.get(ISVC_KIND, key.namespace, key.service)
        if key is None or resource is None:
            return None
        plan = self._plan(resource).components.get(key.component)
        if plan is None:  # a component the spec no longer has, its replicas on their way out
            return self._revisions.get(name)
        policy = plan.scaling
        scale = Scale(policy.metric, policy.target, policy.min_scale, policy.max_scale, plan.container_concurrency)
        revision = self._revisions.get(name)
        if revision is None:
            revision = self._revisions[name] = _Revision(key, scale)
        revision.scale = scale
        return revision

    def _stored_revisions(self) -> dict[str, RevisionKey]:
        store = self.reconciler.store
        return {
            record.name: RevisionKey(resource.namespace, resource.name, component, record.name)
            for resource in store.list(ISVC_KIND)
            for component in COMPONENTS
            for record in store.revisions(resource.namespace, resource.name, component)
        }

    def _plan(self, resource: Resource) -> ServicePlan:
        key = (resource.namespace, resource.name, resource.created, resource.generation)
        plan = self._plans.get(key)
        if plan is None:
            self._plans = {k: p for k, p in self._plans.items() if k[:2] != key[:2]}
            plan = self._plans[key] = service_plan(resource.manifest, self.reconciler.domain)
        return plan

    # -- what the API shows ---------------------------------------------------------------------------------
    def top(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """The latest sample of every revision (of `namespace`'s services; of service `name`), with its replicas."""
        replicas = self.reconciler.backend.replicas()
        items = []
        for revision in sorted(self._revisions.values(), key=lambda r: r.key):
            key = revision.key
            if namespace not in (None, key.namespace) or name not in (None, key.service) or not revision.now:
                continue
            states = []
            for state in replicas:
                known = self._replicas.get(state.id)
                if state.revision != key.revision or known is None or known.pid != state.pid:
                    continue
                states.append(
                    {
                        "replica": state.id,
                        "pid": state.pid,
                        "ready": state.ready,
                        "restarts": state.restarts,
                        "cpuCores": known.cpu_cores,
                        "cpuSeconds": known.cpu_total,
                        "memoryBytes": known.resident_bytes,
                    }
                )
            items.append(
                {
                    **dataclasses.asdict(key),
                    **revision.now,
                    "concurrencyTarget": _concurrency_target(revision.scale),
                    "scale": camel_keys(dataclasses.asdict(revision.scale)),
                    "cpuCores": sum(s["cpuCores"] for s in states),
                    "cpuSeconds": sum(s["cpuSeconds"] for s in states),
                    "memoryBytes": sum(s["memoryBytes"] for s in states),
                    "replicaStates": states,
                }
            )
        return items

    def cost(
        self,
        since_s: float,
        namespace: str | None = None,
        name: str | None = None,
        edges: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The cost report of the last `since_s` seconds (whole minutes: those that end in it), of `namespace`'s
        services (of service `name`); `edges` (the service graph's) are carried into it as they are."""
        retention = self.settings.retention_s
        if not 0 < since_s <= retention:
            raise InvalidInput(
                f"since: must be more than 0 and at most the retention, {retention:g} s (WHARF_USAGE_RETENTION_S),"
                f" not {since_s:g}"
            )
        now = self.wall()
        buckets = [
            b
            for b in self.table.since(now - since_s)
            if namespace in (None, b.key.namespace) and name in (None, b.key.service)
        ]
        thresholds = Thresholds(min_observed_s=self.settings.min_observed_s)
        return {"since": since_s, "until": now, **report(buckets, thresholds, edges).document()}

    def metric_families(self) -> Iterator[Metric]:
        """The usage metrics of the replicas and revisions there now (see the module docstring)."""
        cpu = CounterMetricFamily(
            "wharf_replica_cpu_seconds",
            "CPU seconds (user and system) a replica's processes used, from its start.",
            labels=[*_REVISION_LABELS, "replica"],
        )
        memory = GaugeMetricFamily(
            "wharf_replica_resident_memory_bytes",
            "Resident memory of a replica's processes.",
            labels=[*_REVISION_LABELS, "replica"],
        )
        replica_seconds = CounterMetricFamily(
            "wharf_revision_replica_seconds", "Replicas running, times seconds.", labels=_REVISION_LABELS
        )
        idle = CounterMetricFamily(
            "wharf_revision_idle_replica_seconds",
            "Replica-seconds with no request to serve.",
            labels=_REVISION_LABELS,
        )
        concurrency = GaugeMetricFamily(
            "wharf_revision_concurrency",
            "Requests in flight and waiting at the gateway, as last sampled.",
            labels=_REVISION_LABELS,
        )
        target = GaugeMetricFamily(
            "wharf_revision_concurrency_target",
            "Concurrency per replica the autoscaler aims at (containerConcurrency for a revision scaling on rps).",
            labels=_REVISION_LABELS,
        )
        by_revision = self._revisions
        for state in self.reconciler.backend.replicas():
            revision, known = by_revision.get(state.revision), self._replicas.get(state.id)
            if revision is not None and known is not None:
                labels = [*_label_values(revision.key), state.id]
                cpu.add_metric(labels, known.cpu_total)
                memory.add_metric(labels, known.resident_bytes)
        for revision in by_revision.values():
            labels = _label_values(revision.key)
            replica_seconds.add_metric(labels, revision.replica_seconds)
            idle.add_metric(labels, revision.idle_replica_seconds)
            if revision.now:
                concurrency.add_metric(labels, revision.now["concurrency"])
            if (aim := _concurrency_target(revision.scale)) is not None:
                target.add_metric(labels, aim)
        yield from (cpu, memory, replica_seconds, idle, concurrency, target)


class _UsageMetrics(Collector):
    def __init__(self, recorder: UsageRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        return self._recorder.metric_families()


class _Gauges:
    """What the autoscaler's metrics say now of each revision: the replicas it wants, whether it panics, and the
    count and total duration of the cold starts it timed."""

    def __init__(self, metrics: Any) -> None:
        self.desired = {s.labels["revision"]: int(s.value) for s in _samples(metrics.desired)}
        self.panic = {s.labels["revision"]: s.value for s in _samples(metrics.panic)}
        counts, sums = {}, {}
        for sample in _samples(metrics.cold_start):
            if sample.name.endswith("_count"):
                counts[sample.labels["revision"]] = sample.value
            elif sample.name.endswith("_sum"):
                sums[sample.labels["revision"]] = sample.value
        self.cold_starts = {name: (count, sums.get(name, 0.0)) for name, count in counts.items()}


def _samples(metric: Collector) -> Iterator[Any]:
    for family in metric.collect():
        yield from family.samples


def _concurrency_target(scale: Scale) -> float | None:
    if scale.metric == "concurrency":
        return scale.target
    return float(scale.container_concurrency) if scale.container_concurrency else None


def _label_values(key: RevisionKey) -> list[str]:
    return [key.namespace, key.service, key.component, key.revision]
