"""`GET /status`: what the monitor says of each model, for the control plane (`wharf up` reads it every second and
puts `models[NAME]` into the InferenceService NAME's status as `monitoring`):

    {"models": {MODEL: {"rows": 1200, "outsideBounds": ["kstest"],
                        "outliers": {"inspected": 1200, "detected": 3, "rate": 0.0025}, "adversarial": {...}}}}

- `rows`: the model's logged rows held now;
- `outsideBounds`: the names (lower case, sorted) of the model's scheduled metrics outside their bounds now;
- `outliers`, `adversarial`: present when the model has a detector of that kind: its rows `inspected` and
  `detected` since the monitor started, and `rate`, detected / inspected rounded to 4 digits (0 before any).
A model appears when it has logged rows or something else to say (a detector, a metric outside its bounds).

The store gives `rows`; extensions give the rest through status parts (`Monitor.status_parts`), functions answering
{model: {field: value}}. The answer holds no time, so that it changes only when something in it changed: the control
plane writes a service's status only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wharf.monitor.store import MonitorStore

#: What an extension says of the models: {model: {field: value}}.
StatusPart = Callable[[], Mapping[str, Mapping[str, Any]]]


def monitor_status(store: MonitorStore, parts: Iterable[StatusPart]) -> dict[str, Any]:
    """The answer of `GET /status` (see the module's docstring)."""
    models: dict[str, dict[str, Any]] = {
        name: {"rows": store.held[schema.key].rows, "outsideBounds": []} for name, schema in store.models.items()
    }
    for part in parts:
        for model, fields in part().items():
            models.setdefault(model, {"rows": 0, "outsideBounds": []}).update(fields)
    return {"models": {name: said for name, said in sorted(models.items()) if _says_something(said)}}


def _says_something(said: Mapping[str, Any]) -> bool:
    return bool(said["rows"] or said["outsideBounds"] or len(said) > 2)


def rate(detected: int, inspected: int) -> float:
    """detected / inspected, rounded to 4 digits (0 when nothing was inspected)."""
    return round(detected / inspected, 4) if inspected else 0.0
