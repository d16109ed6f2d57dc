"""The cost report's figures and verdicts from made-up usage windows: each rule, their order, and the sums."""

from __future__ import annotations

from wharf.telemetry.cost import (
    FITS,
    OVER_SCALED,
    UNDER_SCALED,
    UNJUDGED,
    Bucket,
    RevisionKey,
    Scale,
    Thresholds,
    Usage,
    report,
)

IDLE = RevisionKey("default", "idle", "predictor", "idle-predictor-00001")
BUSY = RevisionKey("default", "busy", "predictor", "busy-predictor-00001")
MIB = 2**20


def minute(start: float, key: RevisionKey, scale: Scale, **usage: float) -> Bucket:
    return Bucket(start, key, scale, Usage(**{"seconds": 60.0, **usage}))  # type: ignore[arg-type]


def idle_minutes(count: int, min_replicas: int = 3) -> list[Bucket]:
    """`min_replicas` replicas held all along, no request: every replica-second idle."""
    scale = Scale(target=70.0, min_replicas=min_replicas)
    held = 60.0 * min_replicas
    return [
        minute(
            60.0 * i,
            IDLE,
            scale,
            replica_seconds=held,
            idle_replica_seconds=held,
            cpu_seconds=0.6,
            memory_byte_seconds=held * 80 * MIB,
            memory_max=82 * MIB,
            replicas_max=min_replicas,
        )
        for i in range(count)
    ]


def queued_minutes(waiting: list[float], panic_s: float = 60.0) -> list[Bucket]:
    """One replica (maxReplicas 1, containerConcurrency 1) with eight requests at once and `waiting` of them
    waiting on average in each minute."""
    scale = Scale(target=0.7, min_replicas=1, max_replicas=1, container_concurrency=1)
    return [
        minute(
            60.0 * i,
            BUSY,
            scale,
            replica_seconds=60.0,
            requests=300,
            concurrency_seconds=60.0 * (w + 1),
            concurrency_max=w + 1,
            waiting_seconds=60.0 * w,
            waiting_max=w + 1,
            queueing_seconds=60.0,
            panic_seconds=panic_s,
            at_max_seconds=60.0,
            queueing_at_max_seconds=60.0,
            replicas_max=1,
        )
        for i, w in enumerate(waiting)
    ]


def test_min_replicas_kept_warm_without_requests_is_over_scaled_with_its_numbers() -> None:
    [idle] = report(idle_minutes(2)).revisions
    assert idle.verdict == OVER_SCALED
    assert idle.recommendation is not None
    assert idle.recommendation.rule == "idle-min-replicas"
    assert idle.recommendation.change == {"minReplicas": 0}
    reason = idle.recommendation.reason
    assert "minReplicas 3 kept 3 replicas warm on average for 0 requests in 120 s" in reason
    assert "360 of 360 replica-seconds idle (100%)" in reason
    assert "1.2 CPU-seconds and about 3 x 80 MiB resident" in reason
    assert "lower minReplicas to 0" in reason and "cold start" in reason
    f = idle.figures
    assert (f.replicas_avg, f.idle_share, f.needed_replicas, f.requests) == (3.0, 1.0, 0, 0)
    assert f.memory_avg_bytes == 80 * MIB and f.memory_max_bytes == 82 * MIB
    assert f.cpu_cores_avg == 0.01 and f.cpu_cores_per_replica == 1.2 / 360


def test_held_at_max_replicas_with_requests_waiting_is_under_scaled_and_says_how_many_would_do() -> None:
    [busy] = report(queued_minutes([7.0, 7.0])).revisions
    assert busy.verdict == UNDER_SCALED  # it panicked too: the rule held at maxReplicas comes first
    assert busy.recommendation is not None and busy.recommendation.rule == "held-at-max-replicas"
    # concurrency 8 against a target of 0.7: the autoscaler would choose ceil(8 / 0.7) = 12
    assert busy.recommendation.change == {"maxReplicas": 12}
    reason = busy.recommendation.reason
    assert "held at maxReplicas 1 for 100% of 120 s, with requests waiting 100% of that time" in reason
    assert "7 waiting on average, at most 8 and steady" in reason
    assert "concurrency 8 on average over 1 replicas against a target of 0.7 a replica" in reason
    assert "or raise containerConcurrency from 1" in reason


def test_a_growing_queue_is_named_rising() -> None:
    [busy] = report(queued_minutes([1.0, 2.0, 5.0, 9.0])).revisions
    assert busy.figures.waiting_trend == "rising"
    assert busy.recommendation is not None and "and rising" in busy.recommendation.reason
    [falling] = report(queued_minutes([9.0, 5.0, 2.0, 1.0])).revisions
    assert falling.figures.waiting_trend == "falling"
    [one] = report(queued_minutes([3.0])).revisions
    assert one.figures.waiting_trend is None  # one span tells no trend


def test_the_wait_must_be_sustained_at_max_replicas() -> None:
    buckets = [
        Bucket(b.start, b.key, b.scale, Usage(**{**_fields(b.usage), "queueing_at_max_seconds": 20.0}))
        for b in queued_minutes([7.0, 7.0], panic_s=0.0)
    ]
    [busy] = report(buckets).revisions
    assert busy.verdict == FITS  # requests waited a third of the time at maxReplicas: under half


def test_panic_for_a_share_of_the_window_is_under_scaled_and_asks_for_the_busiest_need_as_minimum() -> None:
    scale = Scale(target=7.0, min_replicas=1, max_replicas=10)
    quiet = minute(0.0, BUSY, scale, replica_seconds=60.0, requests=60, concurrency_seconds=30.0, concurrency_max=2)
    burst = minute(
        60.0,
        BUSY,
        scale,
        replica_seconds=150.0,
        requests=1200,
        concurrency_seconds=60.0 * 20,
        concurrency_max=40,
        panic_seconds=30.0,
        replicas_max=4,
    )
    [busy] = report([burst, quiet]).revisions  # in any order: sorted by start
    assert busy.verdict == UNDER_SCALED
    assert busy.recommendation is not None and busy.recommendation.rule == "panic"
    assert busy.recommendation.change == {"minReplicas": 3}  # ceil(20 / 7) in the busiest minute
    assert "panicked 25% of 120 s" in busy.recommendation.reason
    assert busy.figures.needed_replicas == 3


def test_minimum_above_the_need_with_most_replica_seconds_idle_is_over_scaled_down_to_the_need() -> None:
    scale = Scale(target=7.0, min_replicas=3)
    bucket = minute(
        0.0, IDLE, scale, replica_seconds=180.0, idle_replica_seconds=160.0, requests=50, concurrency_seconds=60.0
    )
    [idle] = report([bucket], Thresholds(min_observed_s=30.0)).revisions
    assert idle.verdict == OVER_SCALED
    assert idle.recommendation is not None and idle.recommendation.change == {"minReplicas": 1}
    assert "cold start" not in idle.recommendation.reason  # it does not go to zero
    half_idle = minute(0.0, IDLE, scale, replica_seconds=180.0, idle_replica_seconds=90.0, requests=50)
    assert report([half_idle], Thresholds(min_observed_s=30.0)).revisions[0].verdict == FITS


def test_too_short_a_window_is_not_judged() -> None:
    [idle] = report(idle_minutes(1), Thresholds(min_observed_s=90.0)).revisions
    assert idle.verdict == UNJUDGED and idle.recommendation is None


def test_rps_scaled_revisions_are_judged_on_requests_per_second() -> None:
    scale = Scale(metric="rps", target=14.0, min_replicas=4)
    bucket = minute(
        0.0, IDLE, scale, replica_seconds=240.0, idle_replica_seconds=220.0, requests=60 * 20, concurrency_seconds=6.0
    )
    [idle] = report([bucket]).revisions
    assert idle.figures.needed_replicas == 2  # ceil(20 rps / 14)
    assert idle.figures.utilisation == 20 / (4 * 14)
    assert idle.recommendation is not None and idle.recommendation.change == {"minReplicas": 2}


def test_usage_adds_up_sums_and_keeps_the_most() -> None:
    a = Usage(seconds=60, replica_seconds=120, memory_max=5, concurrency_max=3, requests=10, cold_starts=1)
    b = Usage(seconds=30, replica_seconds=30, memory_max=9, concurrency_max=1, requests=5, cold_start_seconds=2.5)
    total = a + b
    assert (total.seconds, total.replica_seconds, total.requests) == (90, 150, 15)
    assert (total.memory_max, total.concurrency_max) == (9, 3)
    assert (total.cold_starts, total.cold_start_seconds) == (1, 2.5)


def test_services_sum_their_revisions_and_the_document_carries_the_edges() -> None:
    canary = RevisionKey("default", "idle", "predictor", "idle-predictor-00002")
    buckets = [
        *idle_minutes(2),
        *(Bucket(b.start, canary, b.scale, b.usage) for b in idle_minutes(2)),
        *queued_minutes([7.0, 7.0]),
    ]
    edges = [{"source": "default/busy", "destination": "default/idle", "requests": 3}]
    result = report(buckets, edges=edges)
    services = {s.service: s for s in result.services}
    assert services["idle"].usage.replica_seconds == 720 and services["idle"].verdicts == (OVER_SCALED,)
    assert services["busy"].verdicts == (UNDER_SCALED,)
    document = result.document()
    assert document["edges"] == edges
    assert [r["revision"] for r in document["revisions"]] == [
        "busy-predictor-00001", "idle-predictor-00001", "idle-predictor-00002",
    ]  # fmt: skip
    first = document["revisions"][0]
    assert first["figures"]["idleReplicaSeconds"] == 0 and first["scale"]["maxReplicas"] == 1
    assert first["recommendation"]["change"] == {"maxReplicas": 12}
    assert document["thresholds"]["minObservedS"] == 60.0
    assert document["services"][0]["usage"]["replicaSeconds"] == 120


def _fields(usage: Usage) -> dict[str, float]:
    return {name: getattr(usage, name) for name in Usage.__dataclass_fields__}
