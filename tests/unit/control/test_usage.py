"""The usage recorder: samples of replicas, gateway load and autoscaler gauges added up into per-minute rows that a
restart keeps, the cost report and `top` over them, and the usage metrics. Injected clocks, made-up process
readings, a real store and reconciler over a backend that starts nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
from fastapi import FastAPI
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wharf.control.api import create_app
from wharf.control.controller import Controller
from wharf.control.usage import UsageRecorder, UsageSettings
from wharf.control.usage_table import UsageTable
from wharf.errors import InvalidInput
from wharf.gateway.stats import RevisionStats
from wharf.telemetry.usage import ProcessUsage

from .fakes import Gateway, control_plane
from .test_reconciler_limits import Backend

IDLE = "idle-predictor-00001"
BUSY = "busy-predictor-00001"
MIB = 2**20
START = 6000.0  # wall-clock seconds: the start of a minute


def service(name: str, fields: str) -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  predictor:\n{fields}    model:\n      modelFormat: {{name: custom}}\n"
        "      storageUri: models:WhoAmI\n"
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LoadGateway(Gateway):
    """A gateway whose statistics the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.load: dict[str, RevisionStats] = {}

    def stats(self) -> dict[str, RevisionStats]:  # type: ignore[override]
        return self.load


class Rig:
    """Two services on a backend that starts nothing: `idle` (minReplicas 3) and `busy` (minReplicas and
    maxReplicas 1, containerConcurrency 1); processes read from `self.processes`; both clocks advance together."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.backend = Backend()
        self.gateway = LoadGateway()
        self.controller = control_plane(home, self.backend, self.gateway)
        self.processes: dict[int, ProcessUsage] = {}
        self.monotonic, self.wall = Clock(100.0), Clock(START)
        self.recorder = self.new_recorder()

    def new_recorder(self) -> UsageRecorder:
        settings = UsageSettings(sample_s=5.0, min_observed_s=0.0)
        return UsageRecorder(
            self.controller.reconciler,
            UsageTable(self.home / "wharf.db"),
            settings,
            read=lambda pids: {pid: self.processes[pid] for pid in pids if pid in self.processes},
            clock=self.monotonic,
            wall=self.wall,
        )

    def restart(self) -> None:
        """A new control plane over the same home (and replicas), with a recorder of its own."""
        self.recorder.table.close()
        self.controller.store.close()
        self.controller = control_plane(self.home, self.backend, self.gateway)
        self.recorder = self.new_recorder()

    def sample(self, after_s: float = 5.0) -> None:
        self.monotonic.now += after_s
        self.wall.now += after_s
        replicas = self.backend.replicas()
        self.recorder.sample(replicas, self.recorder.read([r.pid for r in replicas]))


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path)
    controller: Controller = rig.controller
    asyncio.run(controller.apply(service("idle", "    minReplicas: 3\n")))
    fields = "    minReplicas: 1\n    maxReplicas: 1\n    containerConcurrency: 1\n"
    asyncio.run(controller.apply(service("busy", fields)))
    for state in rig.backend.replicas():  # pids 100, 101, 102 (idle) and 100 (busy): one reading per replica
        rig.processes[state.pid] = ProcessUsage(cpu_seconds=2.0, resident_bytes=80 * MIB)
    return rig


def samples(rig: Rig) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The control plane's metrics: (sample name, sorted labels) -> value."""
    text = rig.controller.metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def busy_load(answered: int, in_flight: int = 8) -> dict[str, RevisionStats]:
    return {BUSY: RevisionStats(in_flight, answered, 0, 0.0, None, None, answered=answered)}


def test_an_idle_minimum_and_a_queue_at_the_maximum_add_up_to_their_rows_and_verdicts(rig: Rig) -> None:
    rig.sample()  # the first sample only takes the counts as they are
    rig.controller.reconciler.metrics.panic.labels(BUSY).set(1)
    for answered in (50, 100, 150):
        rig.gateway.load = busy_load(answered)
        rig.sample()
    rows = {b.key.revision: b for b in rig.recorder.table.since(START)}
    idle, busy = rows[IDLE].usage, rows[BUSY].usage
    assert (idle.seconds, idle.replica_seconds, idle.idle_replica_seconds, idle.requests) == (15, 45, 45, 0)
    assert idle.memory_byte_seconds == 45 * 80 * MIB and idle.memory_max == 80 * MIB
    assert idle.cpu_seconds == 0  # their processes started before the recorder (adopted): counted elsewhere
    assert rows[IDLE].scale.min_replicas == 3
    # eight requests at once, one taken by the one replica (containerConcurrency 1), seven held
    assert (busy.requests, busy.concurrency_seconds, busy.waiting_seconds, busy.waiting_max) == (150, 120, 105, 7)
    assert (busy.at_max_seconds, busy.queueing_at_max_seconds, busy.panic_seconds) == (15, 15, 15)
    assert busy.idle_replica_seconds == 0 and busy.replica_seconds == 15

    cost = rig.recorder.cost(3600)
    verdicts = {r["revision"]: r for r in cost["revisions"]}
    assert verdicts[IDLE]["verdict"] == "over-scaled"
    assert verdicts[IDLE]["recommendation"]["change"] == {"minReplicas": 0}
    assert verdicts[BUSY]["verdict"] == "under-scaled"
    assert verdicts[BUSY]["recommendation"]["rule"] == "held-at-max-replicas"
    assert [s["service"] for s in rig.recorder.cost(3600, name="busy")["services"]] == ["busy"]
    assert rig.recorder.cost(3600, namespace="other")["revisions"] == []


def test_cpu_seconds_are_the_increase_of_each_process_and_a_restarted_replica_counts_from_its_start(
    rig: Rig,
) -> None:
    rig.sample()
    first = rig.backend.states[IDLE][0]
    rig.processes[first.pid] = ProcessUsage(cpu_seconds=2.5, resident_bytes=90 * MIB)
    rig.sample()
    restarted = dataclasses.replace(first, pid=555, started_at=rig.wall.now + 1, restarts=1)
    rig.backend.states[IDLE][0] = restarted
    rig.processes[555] = ProcessUsage(cpu_seconds=1.25, resident_bytes=40 * MIB)
    rig.sample()
    [row] = [b for b in rig.recorder.table.since(START) if b.key.revision == IDLE]
    assert row.usage.cpu_seconds == 0.5 + 1.25
    assert row.usage.memory_max == 90 * MIB
    metrics = samples(rig)
    labels = (("component", "predictor"), ("namespace", "default"), ("replica", first.id), ("revision", IDLE))
    labels += (("service", "idle"),)
    assert metrics[("wharf_replica_cpu_seconds_total", labels)] == 3.75  # 2.5 before the restart, 1.25 after
    assert metrics[("wharf_replica_resident_memory_bytes", labels)] == 40 * MIB
    [top] = rig.recorder.top(name="idle")
    replica = next(s for s in top["replicaStates"] if s["replica"] == first.id)
    assert replica["cpuSeconds"] == 3.75 and replica["restarts"] == 1 and replica["memoryBytes"] == 40 * MIB


def test_rows_are_per_wall_clock_minute_kept_across_a_restart_and_pruned_after_the_retention(rig: Rig) -> None:
    rig.sample()
    rig.sample(50.0)  # 50 s at the end of the first minute (a late sample counts two periods at most: 10 s)
    rig.sample(20.0)  # the next minute
    minutes = sorted({b.start for b in rig.recorder.table.since(START)})
    assert minutes == [START, START + 60]
    rig.restart()  # a restarted daemon reads what the one before wrote
    assert {b.start for b in rig.recorder.table.since(START)} == {START, START + 60}
    idle = next(r for r in rig.recorder.cost(3600)["revisions"] if r["revision"] == IDLE)
    assert idle["figures"]["observedS"] == 20.0
    rig.recorder.settings = UsageSettings(retention_s=120.0)
    rig.sample(110.0)  # at START + 185 (the new recorder's first sample): the first minute ended 125 s ago
    assert {b.start for b in rig.recorder.table.since(0.0)} == {START + 60}


def test_cold_starts_the_autoscaler_timed_are_counted_once(rig: Rig) -> None:
    rig.sample()
    rig.controller.reconciler.metrics.cold_start.labels(BUSY).observe(2.0)
    rig.sample()
    rig.sample()
    [row] = [b for b in rig.recorder.table.since(START) if b.key.revision == BUSY]
    assert (row.usage.cold_starts, row.usage.cold_start_seconds) == (1, 2.0)


def test_metrics_name_every_revision_and_replica_and_drop_those_that_are_gone(rig: Rig) -> None:
    rig.sample()
    rig.gateway.load = busy_load(10, in_flight=3)
    rig.sample()
    metrics = samples(rig)
    busy = (("component", "predictor"), ("namespace", "default"), ("revision", BUSY), ("service", "busy"))
    assert metrics[("wharf_revision_replica_seconds_total", busy)] == 5.0
    assert metrics[("wharf_revision_idle_replica_seconds_total", busy)] == 0.0
    assert metrics[("wharf_revision_concurrency", busy)] == 3.0
    assert metrics[("wharf_revision_concurrency_target", busy)] == 0.7  # containerConcurrency 1 at 70%
    idle_replicas = [labels for name, labels in metrics if name == "wharf_replica_cpu_seconds_total"]
    assert len(idle_replicas) == 4  # three of idle, one of busy
    asyncio.run(rig.controller.delete("InferenceService", "default", "idle"))
    rig.gateway.load = busy_load(10, in_flight=0)
    rig.sample()
    metrics = samples(rig)
    assert not [labels for _, labels in metrics if ("service", "idle") in labels]
    assert metrics[("wharf_revision_concurrency", busy)] == 0.0


def test_the_window_must_be_within_the_retention(rig: Rig) -> None:
    for since in (0.0, -5.0, 86401.0, float("nan")):
        with pytest.raises(InvalidInput, match="^since: must be more than 0 and at most the retention"):
            rig.recorder.cost(since)


def test_the_api_serves_top_and_cost_and_names_a_bad_since(rig: Rig) -> None:
    rig.sample()
    rig.gateway.load = busy_load(20)
    rig.sample()
    # In this thread, as in the daemon's loop: the store's SQLite connection stays in the thread that made it.
    asyncio.run(_ask_top_and_cost(create_app(rig.controller, usage=rig.recorder)))


async def _ask_top_and_cost(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        top = await client.get("/apis/wharf.dev/v1/usage/top", params={"namespace": "default"})
        assert top.status_code == 200
        assert [item["service"] for item in top.json()["items"]] == ["busy", "idle"]
        assert top.json()["items"][0]["inFlight"] == 8
        cost = await client.get("/apis/wharf.dev/v1/usage/cost", params={"since": "600", "name": "idle"})
        assert cost.status_code == 200 and cost.json()["since"] == 600.0
        assert [r["verdict"] for r in cost.json()["revisions"]] == ["over-scaled"]
        for bad in ("soon", "0", "1e9"):
            refused = await client.get("/apis/wharf.dev/v1/usage/cost", params={"since": bad})
            assert refused.status_code == 400 and "since" in refused.json()["error"], refused.text
        assert "/apis/wharf.dev/v1/usage/cost" in (await client.get("/openapi.json")).json()["paths"]
