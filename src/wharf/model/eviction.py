"""Which loaded models to evict so that a model fits a replica's memory budget: least recently used first.

`make_room` decides, given the models resident now, the bytes in use, the budget and the bytes the model about to
load (or just loaded) needs. Its rules, in the order it applies them:

1. No budget: nothing to evict.
2. A model needing more than the whole budget is refused (no eviction could make it fit).
3. If what is in use and what is needed fit the budget, nothing is evicted.
4. Else idle models (no request in flight) are evicted, least recently used first, until it fits.
5. If every idle model is not enough, it is refused: nothing is evicted, and the reason says how much the models
   serving requests hold.

A pure function: no clock, no I/O; the caller passes the figures and carries the decision out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resident:
    """A loaded model as eviction sees it: its key, measured bytes, when it was last used, whether it is busy."""

    key: Hashable
    bytes: int
    last_used: float
    busy: bool


@dataclass(frozen=True, slots=True)
class Room:
    """The models to evict (least recently used first), or why the room cannot be made (`refused`, else "")."""

    evict: tuple[Hashable, ...] = ()
    refused: str = ""


def make_room(residents: Iterable[Resident], used: int, budget: int | None, needed: int) -> Room:
    """The decision for a model needing `needed` bytes while `used` bytes of `budget` are in use (rules above)."""
    if budget is None:
        return Room()
    if needed > budget:
        return Room(refused=f"it needs {needed} bytes, more than the whole memory budget of {budget} bytes")
    excess = used + needed - budget
    if excess <= 0:
        return Room()
    evict: list[Hashable] = []
    freed = busy = 0
    for resident in sorted(residents, key=lambda r: r.last_used):
        if resident.busy:
            busy += resident.bytes
            continue
        evict.append(resident.key)
        freed += resident.bytes
        if freed >= excess:
            return Room(tuple(evict))
    return Room(
        refused=f"it needs {needed} bytes and evicting every idle model leaves {budget - used + freed} free of the"
        f" memory budget of {budget} bytes (models serving requests hold {busy} bytes)"
    )
