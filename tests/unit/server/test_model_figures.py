"""A model's figures from its worker threads: recorded as appends, published in bulk exactly as one by one."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from wharf.server.metrics import ServerMetrics, _observe_all
from wharf.server.runner import Job

BUCKETS = (0.001, 0.0025, 0.01, 1, 60)
VALUES = [0.0, 0.0005, 0.001, 0.0010001, 0.0025, 0.003, 0.01, 0.5, 1.0, 59.9, 60.0, 61.0, 1e9]


def _rendered(fill: str, values: dict[str, list[float]]) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", ["model"], buckets=BUCKETS, registry=registry)
    if fill == "one by one":
        for model, observed in values.items():
            for value in observed:
                histogram.labels(model).observe(value)
    else:
        _observe_all([(histogram.labels(model), observed) for model, observed in values.items()])
    return b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line)


def test_bulk_observation_matches_observing_one_at_a_time_on_and_between_the_bounds() -> None:
    assert _rendered("in bulk", {"m": VALUES}) == _rendered("one by one", {"m": VALUES})


def test_bulk_observation_of_many_children_at_once_gives_each_its_own_values() -> None:
    values = {"a": VALUES, "b": [0.002], "c": VALUES[::-1] + [0.0005] * 3, "d": [1e9, 0.0]}
    assert _rendered("in bulk", values) == _rendered("one by one", values)


def test_the_shared_threads_flush_publishes_every_models_figures() -> None:
    metrics = ServerMetrics()
    shared = metrics.shared_observer()
    records = {name: metrics.model_observer(name).step("predict") for name in ("a", "b", "c")}
    for i, name in enumerate(records):
        for _ in range(i + 1):
            records[name](0.002)
    shared.group([Job(None, None, 1, time.perf_counter())], time.perf_counter(), 0)  # type: ignore[arg-type]
    shared.flush()
    for i, name in enumerate(records):
        count = metrics.registry.get_sample_value("wharf_model_step_seconds_count", {"model": name, "step": "predict"})
        assert count == i + 1
    assert metrics.registry.get_sample_value("wharf_batch_size_count", {"model": "(shared)"}) == 1
    assert metrics.registry.get_sample_value("wharf_batch_size_count", {"model": "a"}) is None  # the shared's
    assert metrics.registry.get_sample_value("wharf_queue_depth", {"model": "a"}) is None


def _sample(metrics: ServerMetrics, line_start: str) -> float:
    text = metrics.render().decode()
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).split()[-1])


def test_figures_recorded_by_many_threads_while_flushing_are_all_counted() -> None:
    metrics = ServerMetrics()
    figures = metrics.model_observer("m")
    record = figures.step("predict")
    job = Job(None, None, 2, time.perf_counter())  # type: ignore[arg-type]

    def work() -> None:
        for _ in range(5000):
            figures.group([job], time.perf_counter(), 0)
            record(0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        figures.flush()  # as a scrape does, while the workers record
    for thread in threads:
        thread.join()
    assert _sample(metrics, 'wharf_model_step_seconds_count{model="m",step="predict"}') == 20_000
    assert _sample(metrics, 'wharf_batch_size_sum{model="m"}') == 40_000
    assert _sample(metrics, 'wharf_queue_wait_seconds_count{model="m"}') == 20_000
    assert metrics.model_observer("m") is figures  # a reloaded model reports to the same figures
    assert 'step="preprocess"' not in metrics.render().decode()  # only the steps a model has
