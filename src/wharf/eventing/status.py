"""What the consumer reports: its state and why, its partitions (committed offset, end offset, lag), its counters
and the end-to-end latency (record timestamp to the answer's acknowledgement), as `GET /status` JSON and
`GET /metrics` Prometheus text; `GET /healthz` answers 200 while the process runs.

`/status`:
```
{"state": "consuming", "reason": null, "group_id": "...", "topics": [...],
 "partitions": [{"topic": "t", "partition": 0, "committed": 120, "end": 130, "lag": 10}],
 "lag": 10,
 "counters": {"consumed": 0, "answered": 0, "dead_lettered": 0, "retried": 0, "duplicates_suspected": 0},
 "latency_ms": {"p50": 1.2, "p90": 2.0, "p99": 3.1, "max": 4.0, "count": 1000}}
```
States: `connecting` (before the brokers first answered), `consuming`, `broker-unavailable` (with the reason;
reconnecting with backoff), `stopping`. A partition's `committed` and `end` are null until known; its lag is
`end - committed` (the whole end while nothing is committed). The latency window is the last `_WINDOW` answers.

Cost per answered record: one float appended to a bounded deque.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_WINDOW = 10_000
COUNTERS = ("consumed", "answered", "dead_lettered", "retried", "duplicates_suspected")


@dataclass
class PartitionFigures:
    committed: int | None = None
    end: int | None = None

    def lag(self) -> int | None:
        if self.end is None:
            return None
        return max(self.end - (self.committed or 0), 0)


@dataclass
class Status:
    """The consumer's figures; the consumer writes them, the listener reads them."""

    group_id: str
    topics: list[str]
    state: str = "connecting"
    reason: str | None = None
    partitions: dict[tuple[str, int], PartitionFigures] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def became(self, state: str, reason: str | None = None) -> None:
        self.state, self.reason = state, reason

    def answered_at(self, timestamps_ms: list[int], now_s: float | None = None) -> None:
        """Count answers acknowledged now for records created at `timestamps_ms` (Kafka timestamps)."""
        now_ms = (time.time() if now_s is None else now_s) * 1000.0
        self.latencies_ms.extend(now_ms - t for t in timestamps_ms)

    def lag(self) -> int:
        return sum(p.lag() or 0 for p in self.partitions.values())

    def latency(self) -> dict[str, float | int | None]:
        if not self.latencies_ms:
            return {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
        values = np.fromiter(self.latencies_ms, float, len(self.latencies_ms))
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {
            "p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "max": round(float(values.max()), 3), "count": len(values),
        }  # fmt: skip

    def document(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "group_id": self.group_id,
            "topics": self.topics,
            "partitions": [
                {"topic": t, "partition": p, "committed": f.committed, "end": f.end, "lag": f.lag()}
                for (t, p), f in sorted(self.partitions.items())
            ],
            "lag": self.lag(),
            "counters": dict(self.counters),
            "latency_ms": self.latency(),
        }


class _Collector:
    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Any:
        s = self.status
        for name in COUNTERS:
            counter = CounterMetricFamily(f"wharf_kafka_{name}", f"records {name.replace('_', ' ')}")
            counter.add_metric([], s.counters[name])
            yield counter
        state = GaugeMetricFamily("wharf_kafka_state", "1 for the consumer's state", labels=["state", "reason"])
        state.add_metric([s.state, s.reason or ""], 1)
        yield state
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily("wharf_kafka_lag", "records not yet committed, per partition", labels=labels)
        committed = GaugeMetricFamily("wharf_kafka_committed_offset", "committed offset per partition", labels=labels)
        end = GaugeMetricFamily("wharf_kafka_end_offset", "end offset per partition", labels=labels)
        for (topic, partition), f in sorted(s.partitions.items()):
            key = [topic, str(partition)]
            if f.end is not None:
                lag.add_metric(key, f.lag() or 0)
                end.add_metric(key, f.end)
            if f.committed is not None:
                committed.add_metric(key, f.committed)
        yield from (lag, committed, end)
        latency = GaugeMetricFamily(
            "wharf_kafka_latency_seconds", "record timestamp to answer acknowledged, recent", labels=["quantile"]
        )
        for q, value in s.latency().items():
            if q.startswith("p") and value is not None:
                latency.add_metric([f"0.{q[1:]}"], float(value) / 1000.0)
        yield latency


class StatusApp:
    """The status listener's ASGI application."""

    def __init__(self, status: Status) -> None:
        self.status = status
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(status))  # type: ignore[arg-type]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] != "GET":
            code, body, kind = 405, orjson.dumps({"error": f"method {scope['method']} is not allowed"}), "json"
        elif path == "/status":
            code, body, kind = 200, orjson.dumps(self.status.document()), "json"
        elif path == "/metrics":
            code, body, kind = 200, generate_latest(self.registry), "text"
        elif path == "/healthz":
            code, body, kind = 200, orjson.dumps({"state": self.status.state}), "json"
        else:
            code, body, kind = 404, orjson.dumps({"error": f"no such path: {path}"}), "json"
        content_type = b"application/json" if kind == "json" else b"text/plain; version=0.0.4; charset=utf-8"
        await send({"type": "http.response.start", "status": code, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})
