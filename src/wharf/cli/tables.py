"""How `wharf get` and `wharf describe` print resources: the columns of each kind (more with `-o wide`), ages as
kubectl writes them, and tables whose later rows (a watch's) keep the columns of the first."""

from __future__ import annotations

import time
from calendar import timegm
from collections.abc import Callable, Iterable
from typing import Any

from wharf.cli.progress import trouble
from wharf.control.spec.kafkasource import sink_label

Row = tuple[str, ...]
Column = tuple[str, Callable[[dict[str, Any]], str]]


def _ready(item: dict[str, Any]) -> dict[str, Any]:
    conditions = item.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def _traffic(item: dict[str, Any], latest: bool) -> str:
    traffic = _predictor(item).get("traffic", [])
    return next((str(t["percent"]) for t in traffic if bool(t.get("latestRevision")) == latest), "")


def _predictor(item: dict[str, Any]) -> dict[str, Any]:
    """The predictor's status (KServe's columns show the predictor's revisions and traffic)."""
    return item.get("status", {}).get("components", {}).get("predictor", {})


def _message(item: dict[str, Any]) -> str:
    """Why it is not ready: a component's trouble (a replica's error) before Ready's own message."""
    return trouble(item) or _ready(item).get("message", "").split("\n")[0]


def _monitor(item: dict[str, Any]) -> str:
    """What the model monitor says of the service (its `status.monitoring`), in a few words: the scheduled metrics
    outside their bounds, the share of rows found outliers or adversarial, else `ok`; empty when it says nothing."""
    said = item.get("status", {}).get("monitoring")
    if not said:
        return ""
    parts = [f"outside: {','.join(said['outsideBounds'])}"] if said.get("outsideBounds") else []
    for detector in ("outliers", "adversarial"):
        counts = said.get(detector) or {}
        if counts.get("detected"):
            parts.append(f"{detector} {100 * counts.get('rate', 0):.3g}%")
    return "; ".join(parts) or "ok"


def _age(item: dict[str, Any]) -> str:
    created = item.get("metadata", {}).get("creationTimestamp")
    return age(created) if created else ""


def _holding(item: dict[str, Any]) -> dict[str, Any]:
    """A BatchJob's condition that holds (Running, Succeeded or Failed)."""
    conditions = item.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("status") == "True"), {})


def _lag(item: dict[str, Any]) -> str:
    lag = item.get("status", {}).get("lag")
    return "" if lag is None else str(lag)


def _progress(item: dict[str, Any]) -> str:
    """Rows done of the total (`1200/5000`), or just those done while the total is not known."""
    status = item.get("status", {})
    done, total = status.get("rowsDone"), status.get("rowsTotal")
    return "" if done is None else f"{done}/{total}" if total is not None else str(done)


_NAME: Column = ("NAME", lambda item: item["metadata"]["name"])
_URL: Column = ("URL", lambda item: item.get("status", {}).get("url", ""))
_READY: Column = ("READY", lambda item: _ready(item).get("status", "Unknown"))
_AGE: Column = ("AGE", _age)
_MESSAGE: Column = ("MESSAGE", _message)

COLUMNS: dict[str, tuple[list[Column], list[Column]]] = {  # kind -> (columns, the more that -o wide adds)
    "InferenceService": (
        [
            _NAME,
            _URL,
            _READY,
            ("PREV", lambda item: _traffic(item, latest=False)),
            ("LATEST", lambda item: _traffic(item, latest=True)),
            ("REPLICAS", lambda item: str(item.get("status", {}).get("replicas", ""))),
            _AGE,
        ],
        [
            ("PREVROLLEDOUTREVISION", lambda item: _predictor(item).get("previousRolledoutRevision") or ""),
            ("LATESTREADYREVISION", lambda item: _predictor(item).get("latestReadyRevision") or ""),
            ("COMPONENTS", lambda item: ",".join(item.get("status", {}).get("components", {}))),
            ("MONITOR", _monitor),
            _MESSAGE,
        ],
    ),
    "InferenceGraph": (
        [_NAME, _URL, _READY, _AGE],
        [("ROOT", lambda item: item.get("spec", {}).get("nodes", {}).get("root", {}).get("routerType", "")), _MESSAGE],
    ),
    "BatchJob": (
        [
            _NAME,
            ("STATUS", lambda item: _holding(item).get("type", "Pending")),
            ("ROWS", _progress),
            ("ERRORS", lambda item: str(item.get("status", {}).get("errors", ""))),
            _AGE,
        ],
        [
            ("MODEL", lambda item: item.get("spec", {}).get("model", "")),
            ("MESSAGE", lambda item: _holding(item).get("message", "").split("\n")[0]),
        ],
    ),
    "TrainedModel": (
        [
            _NAME,
            ("ISVC", lambda item: item.get("spec", {}).get("inferenceService", "")),
            ("FRAMEWORK", lambda item: item.get("spec", {}).get("model", {}).get("framework", "")),
            _READY,
            ("LOADED ON", lambda item: ",".join(item.get("status", {}).get("loadedOn") or []) or "-"),
            _URL,
            _AGE,
        ],
        [("MEMORY", lambda item: item.get("spec", {}).get("model", {}).get("memory", "")), _MESSAGE],
    ),
    "KafkaSource": (
        [
            _NAME,
            ("SINK", lambda item: sink_label(item.get("spec", {}))),
            ("TOPICS", lambda item: ",".join(item.get("spec", {}).get("topics", []))),
            ("MEMBERS", lambda item: str(item.get("status", {}).get("consumers", ""))),
            ("LAG", _lag),
            _READY,
            _AGE,
        ],
        [("GROUP", lambda item: item.get("spec", {}).get("consumerGroup", "")), _MESSAGE],
    ),
}


def columns(kind: str, wide: bool, namespaces: bool) -> list[Column]:
    """The columns of `kind`'s table: the wide ones too with `wide`, and first the namespace with `namespaces`."""
    plain, more = COLUMNS[kind]
    namespace: list[Column] = [("NAMESPACE", lambda item: item["metadata"].get("namespace", "default"))]
    return [*(namespace if namespaces else []), *plain, *(more if wide else [])]


class Table:
    """Rows under a header, each column as wide as its widest cell; rows printed later (a watch's) keep the widths
    of those printed first, and push a column wider only where a cell needs it."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.widths = [len(header) for header, _ in columns]

    def row(self, item: dict[str, Any]) -> Row:
        return tuple(cell(item) for _, cell in self.columns)

    def render(self, items: Iterable[dict[str, Any]], header: bool = True) -> str:
        rows = [self.row(item) for item in items]
        if header:
            rows.insert(0, tuple(name for name, _ in self.columns))
        for row in rows:
            self.widths = [max(width, len(cell)) for width, cell in zip(self.widths, row, strict=True)]
        return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, self.widths, strict=True)).rstrip() for row in rows)


def age(timestamp: str, now: float | None = None) -> str:
    """How long ago an RFC 3339 UTC timestamp (`2024-01-01T00:00:00Z`) was, as kubectl writes it: 45s, 3m12s,
    5h, 2d3h."""
    try:
        then = timegm(time.strptime(timestamp.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return ""
    seconds = max(int((time.time() if now is None else now) - then), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def multi_model_table(summary: dict[str, Any] | None, model: str | None = None) -> str:
    """What a multi-model service's replicas hold (its status's `multiModel`): per replica its models in memory and
    registered, memory used against its budget, loads, evictions, cache hit ratio and mean load time; with `model`, whether each
    replica has that one in memory."""
    if not summary or not summary.get("replicas"):
        return ""
    rows = [("REPLICA", "REVISION", "LOADED", "REGISTERED", "MEMORY", "LOADS", "EVICTIONS", "HIT RATIO", "LOAD TIME")]
    if model is not None:
        rows[0] += (model.upper(),)
    for replica, held in summary["replicas"].items():
        used, budget = held.get("usedBytes"), held.get("budgetBytes")
        memory = f"{_mib(used)} / {_mib(budget) if budget else 'no budget'}"
        ratio = held.get("hitRatio")
        row = (
            replica,
            held.get("revision", ""),
            str(len(held.get("loaded", []))),
            str(held.get("registered", "")),
            memory,
            str(held.get("loads", "")),
            str(held.get("evictions", "")),
            "-" if ratio is None else f"{ratio:.1%}",
            "-" if (latency := held.get("loadLatencyMs")) is None else f"{latency:g} ms",
        )
        if model is not None:
            row += ("loaded" if model in held.get("loaded", []) else "registered",)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["Multi-model replicas:"]
    lines += ["  " + "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}Mi"


def bandit_tables(figures: dict[str, Any]) -> str:
    """A graph's Bandit nodes (`wharf.control.bandit_view`): per node its policy, then a row per arm."""
    lines = []
    for node, bandit in figures["nodes"].items():
        parameters = ", ".join(f"{k}={v}" for k, v in bandit["parameters"].items())
        lines.append(f"Bandit {node}:  {bandit['policy']} ({parameters}), {bandit['pulls']} pulls")
        rows = [("ARM", "SERVICE", "READY", "PULLS", "REWARDS", "MEAN", "SHARE", "NEXT")]
        for arm in bandit["arms"]:
            mean, share = arm["meanReward"], arm["share"]
            rows.append(
                (
                    arm["name"],
                    arm.get("service", ""),
                    "True" if arm["ready"] else "False",
                    str(arm["pulls"]),
                    str(arm["rewards"]),
                    "-" if mean is None else f"{mean:.3f}",
                    "-" if share is None else f"{share:.1%}",
                    f"{arm['probability']:.1%}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def events_table(events: list[dict[str, Any]], now: float | None = None) -> str:
    """A resource's events as `kubectl describe` lists them (a message's further lines indented under it)."""
    if not events:
        return "Events:  <none>"
    rows = [("TYPE", "REASON", "AGE", "MESSAGE")]
    for event in events:
        last, first = age(event["lastTimestamp"], now), age(event["firstTimestamp"], now)
        when = last if event.get("count", 1) == 1 else f"{last} (x{event['count']} over {first})"
        rows.append((event["type"], event["reason"], when, event["message"]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["Events:"]
    for row in rows:
        head = "   ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        message, *more = row[3].split("\n")
        lines.append(f"  {head}   {message}".rstrip())
        lines += [" " * (len(head) + 5) + line for line in more]
    return "\n".join(lines)
