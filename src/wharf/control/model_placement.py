"""Which replicas of a multi-model revision take each model's requests: placement by recent request rate, as
ModelMesh places models. Pure: the replicas' indexes and the rates are handed in.

Rules, in the order `place` applies them, for each model of the revision:
1. its candidates are the ready replicas that have it registered and not failed (a replica registers every
   TrainedModel of its parent; one that started a moment ago may not have it yet);
2. the candidates that have it loaded take its requests; a rarely used model (under `cold_rps` requests a
   second) keeps only one of them, so that its other copies go idle and their least-recently-used eviction frees
   their memory;
3. a frequently used model (over `hot_rps` requests a second per loaded copy) also gets one candidate that has
   not loaded it (the one with the fewest models), which loads it on its next request;
4. a model loaded nowhere goes to one candidate, the one with the fewest models loaded or sent there in this
   pass (ties: a hash of the model's name), which loads it on its first request.
A model with no candidate is left out: the gateway then sends its requests anywhere in the revision.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

LOADED = "READY"
FAILED = "FAILED"
COLD_RPS = 1.0
HOT_RPS = 100.0


@dataclass(frozen=True, slots=True)
class ReplicaIndex:
    """A ready replica and what its repository index says: per model, its state (READY: in memory)."""

    id: str
    states: Mapping[str, str]

    @property
    def loaded(self) -> int:
        return sum(1 for state in self.states.values() if state == LOADED)


def place(
    models: Iterable[str],
    replicas: Sequence[ReplicaIndex],
    rates: Mapping[str, float],
    cold_rps: float = COLD_RPS,
    hot_rps: float = HOT_RPS,
) -> dict[str, tuple[str, ...]]:
    """Per model, the ids of the replicas its requests go to (the module docstring's rules)."""
    load = {replica.id: replica.loaded for replica in replicas}
    placed: dict[str, tuple[str, ...]] = {}
    for model in models:
        candidates = [r for r in replicas if r.states.get(model, FAILED) != FAILED]
        if not candidates:
            continue
        loaded = [r.id for r in candidates if r.states[model] == LOADED]
        rate = rates.get(model, 0.0)
        if loaded and rate < cold_rps:
            chosen = loaded[:1]
        elif loaded:
            chosen = loaded
            spare = [r.id for r in candidates if r.id not in loaded]
            if spare and rate / len(loaded) > hot_rps:
                chosen = [*loaded, _fewest(spare, load, model)]
        else:
            chosen = [_fewest([r.id for r in candidates], load, model)]
        for replica in chosen:
            if replica not in loaded:
                load[replica] += 1
        placed[model] = tuple(chosen)
    return placed


def _fewest(ids: list[str], load: Mapping[str, int], model: str) -> str:
    """The replica of `ids` with the fewest models; ties broken by a stable hash of `model`."""
    fewest = min(load[i] for i in ids)
    tied = [i for i in ids if load[i] == fewest]
    return tied[zlib.crc32(model.encode()) % len(tied)]
