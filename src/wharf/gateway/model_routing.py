"""By-model replica choice for multi-model revisions: a request for a model goes to a replica that has it loaded.

The control plane hands, with a multi-model revision (`Revision.placement`), per model the replicas to send its
requests to: those that have it loaded, or, while none has, the one chosen to load it (a replica loads a model on
its first request). `ModelPlacement.revision_for` narrows the revision to the ready ones among them, and the
balancer then picks the least loaded of those as usual; a model with none ready, or one the placement does not
know, keeps the whole revision.

Cost: a revision without a placement pays one attribute check per request (`placement is None`). A multi-model
revision pays the model name's parse from the path (a few string operations) and one dict lookup; the narrowed
revision is built once per model and table, then reused (a dict kept with the placement, as big as the models
requested since the table came).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wharf.gateway.routes import Revision

_MODEL_PATHS = ("/v1/models/", "/v2/models/")
_PREFIX_LENGTH = len(_MODEL_PATHS[0])


@dataclass(frozen=True, slots=True, eq=False)
class ModelPlacement:
    """Per model name, the ids of the replicas its requests go to (those with it loaded, else the one to load it)."""

    replicas: Mapping[str, tuple[str, ...]]
    _narrowed: dict[str, Revision] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> tuple[Mapping[str, tuple[str, ...]]]:
        return (self.replicas,)  # the table crosses a process boundary: the cache stays behind

    def __setstate__(self, state: tuple[Mapping[str, tuple[str, ...]]]) -> None:
        object.__setattr__(self, "replicas", state[0])
        object.__setattr__(self, "_narrowed", {})

    def revision_for(self, model: str | None, revision: Revision) -> Revision:
        """`revision` (this placement's) narrowed to the ready replicas `model` goes to; `revision` itself for a
        model that is unknown or has none of them ready."""
        if model is None:
            return revision
        narrowed = self._narrowed.get(model)
        if narrowed is None:
            wanted = self.replicas.get(model, ())
            chosen = tuple(r for r in revision.replicas if r.ready and r.id in wanted)
            narrowed = dataclasses.replace(revision, replicas=chosen, placement=None) if chosen else revision
            self._narrowed[model] = narrowed
        return narrowed


def model_of_path(path: str) -> str | None:
    """The model a REST path names (`/v1/models/{m}`, `/v1/models/{m}:predict`, `/v2/models/{m}/infer`, ...)."""
    if not path.startswith(_MODEL_PATHS):
        return None
    name = path[_PREFIX_LENGTH:].partition("/")[0].partition(":")[0].partition("?")[0]
    return name or None
