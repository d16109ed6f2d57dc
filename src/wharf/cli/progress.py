"""Waiting on resources: `wharf wait` (a condition, or deletion, within a timeout) and `wharf apply --wait` (a live
line per resource until each is Ready). Both follow the control API's watch, which the server ends at the timeout,
so that a wait never outlives its deadline by more than a watch's start."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from wharf.client.control import ControlClient, ControlError

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_WAITING = "waiting for a ready replica"


def duration(text: str) -> float:
    """Seconds in a duration as kubectl takes it: `90s`, `1m30s`, `2m`, `500ms`, `1h`, or a plain number of
    seconds; ValueError otherwise."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"{text!r} is not a duration such as 90s, 2m, 1m30s or 500ms") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0:
        raise ValueError(f"{text!r} is negative")
    return seconds


def shown(seconds: float) -> str:
    """A duration as it was probably given (`60s`, `5m`, `1m30s`)."""
    if seconds >= 60 and seconds == int(seconds):
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    return f"{seconds:g}s"


def condition(item: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The resource's condition of type `kind` (compared without case, as kubectl does)."""
    conditions = (item or {}).get("status", {}).get("conditions", [])
    return next((c for c in conditions if str(c.get("type", "")).lower() == kind.lower()), None)


def current(item: dict[str, Any]) -> bool:
    """Whether the status was written for the resource's current spec (its generation)."""
    generation = item.get("metadata", {}).get("generation")
    return generation is None or item.get("status", {}).get("observedGeneration", 0) >= generation


@dataclass(frozen=True)
class Wanted:
    """What `wharf wait --for` waits for: a condition with a status (`condition=Ready`, `condition=Ready=False`) or
    the resource's deletion (`delete`)."""

    condition: str | None
    status: str = "True"

    @classmethod
    def parse(cls, text: str) -> Wanted:
        if text == "delete":
            return cls(None)
        kind, _, rest = text.partition("=")
        name, _, status = rest.partition("=")
        if kind != "condition" or not name:
            raise ValueError(f"--for={text}: use --for=condition=NAME[=STATUS] or --for=delete")
        return cls(name, status or "True")

    def met(self, item: dict[str, Any] | None) -> bool:
        if self.condition is None:
            return item is None
        found = condition(item, self.condition)
        return item is not None and current(item) and found is not None and found["status"] == self.status

    def describe(self) -> str:
        return "be deleted" if self.condition is None else f"be {self.condition}={self.status}"


def watch_until(
    client: ControlClient,
    kind: str,
    namespace: str,
    name: str,
    done: Callable[[dict[str, Any] | None], bool],
    timeout_s: float,
    seen: Callable[[dict[str, Any] | None], None] = lambda _: None,
) -> tuple[bool, dict[str, Any] | None]:
    """Follow one resource until `done(it)` (None once it is gone, or when it is not there) or `timeout_s` passes;
    whether it got there, and how it was last seen. `seen` is called with each state it takes."""
    last: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout_s
    for change, item in client.watch(kind, namespace, name, timeout_s=timeout_s):
        if change != "BOOKMARK":
            last = None if change == "DELETED" else item
        seen(last)
        if done(last):
            return True, last
        if time.monotonic() >= deadline:
            break
    return False, last


def progress(item: dict[str, Any]) -> tuple[bool, str]:
    """Whether a resource is Ready, and a short line that says where it stands: ready at its URL, what its
    replicas wait for (starting, 1/2 ready, pending for a GPU), or why they fail (the first and last lines of the
    error)."""
    ready = condition(item, "Ready")
    status = item.get("status", {})
    if ready is not None and ready["status"] == "True" and current(item):
        return True, f"ready at {status.get('url', '')}"
    failing = trouble(item) if current(item) else None
    if failing:
        return False, failing
    replicas = status.get("replicaStates") or []
    if not replicas:
        return False, (ready or {}).get("message") or "waiting for the control plane"
    ready_count = sum(bool(r.get("ready")) for r in replicas)
    return False, f"starting replicas: {ready_count}/{len(replicas)} ready"


def trouble(item: dict[str, Any]) -> str | None:
    """What keeps a resource from being ready beyond waiting for its replicas to start (a replica's error, a
    rollback, the machine's replica cap) or how far a starting replica has got (`downloading model 40% of 1.2 GB`),
    briefly: the first such message of its component conditions (PredictorReady, ...), else of Ready."""
    conditions = item.get("status", {}).get("conditions", [])
    ordered = [c for c in conditions if c.get("type") != "Ready"] + [c for c in conditions if c.get("type") == "Ready"]
    return next(
        (
            _brief(c["message"])
            for c in ordered
            if c.get("status") == "False" and c.get("message") and not c["message"].startswith(_WAITING)
        ),
        None,
    )


def _brief(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


class LiveLines:
    """One line per resource: rewritten in place on a terminal, else printed again each time it changes."""

    def __init__(self, out: TextIO, labels: list[str]) -> None:
        self.out = out
        self.labels = labels
        self.lines = {label: "" for label in labels}
        self.terminal = out.isatty()
        self._drawn = 0

    def update(self, label: str, text: str) -> None:
        if self.lines[label] == text:
            return
        self.lines[label] = text
        if not self.terminal:
            self.out.write(f"{label}: {text}\n")
        else:
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            for each in self.labels:
                self.out.write(f"\x1b[2K{each}: {self.lines[each] or '...'}\n")
            self._drawn = len(self.labels)
        self.out.flush()


def wait_ready(
    client: ControlClient, kind: str, targets: list[tuple[str, str]], timeout_s: float, out: TextIO
) -> list[str]:
    """Follow the resources of `kind` at `targets` ((namespace, name)) with a live line each until every one is
    Ready or `timeout_s` passes; the labels of those that did not get there."""
    labels = {target: f"{kind.lower()}/{target[1]}" for target in targets}
    lines = LiveLines(out, list(labels.values()))
    waiting = set(targets)
    deadline = time.monotonic() + timeout_s
    while waiting and (left := deadline - time.monotonic()) > 0:
        try:
            for change, item in client.watch(kind, None, None, timeout_s=left):
                key = (item.get("metadata", {}).get("namespace", "default"), item.get("metadata", {}).get("name"))
                if change == "BOOKMARK" or key not in waiting:
                    continue
                is_ready, text = progress(item) if change != "DELETED" else (False, "deleted")
                lines.update(labels[key], text)
                if is_ready:
                    waiting.discard(key)
                    if not waiting:
                        break
        except ControlError:
            if time.monotonic() < deadline:
                raise
    return [labels[target] for target in targets if target in waiting]
