"""What registers a model in a replica's catalogue, and when a model that failed to load is tried again.

The repository load API's body registers a model by URI (Triton's shape, with KServe's TrainedModel fields):
```json
{"parameters": {"storage_uri": "s3://models/a", "model_format": "sklearn", "memory": "64Mi", "lazy": true}}
```
`storage_uri` is required; `model_format` picks the runtime (default: from the artifact); `memory` is the
declared size (bytes or a Kubernetes quantity), used before the model's first load is measured and refused at once
when it exceeds the whole budget; `lazy` (default true) loads the model on its first request, false loads it now.

A model that failed to load is not loaded again on every request: `Backoff` holds the failures, and requests
until `retry_at` are answered with the failure's reason; the wait doubles with each failure, from
`FIRST_RETRY_S` up to `LAST_RETRY_S`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wharf.errors import InvalidInput
from wharf.model.memory import parse_bytes

FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0
_FIELDS = {"storage_uri", "model_format", "memory", "lazy"}


@dataclass(frozen=True, slots=True)
class Registration:
    """A model of the catalogue: where its artifact is, its format, its declared bytes, whether it loads lazily."""

    storage_uri: str
    model_format: str | None = None
    declared_bytes: int | None = None
    lazy: bool = True

    @classmethod
    def parse(cls, name: str, parameters: Any) -> Registration:
        """The registration a load request's `parameters` ask for (InvalidInput naming the field if wrong)."""
        if not isinstance(parameters, dict):
            raise InvalidInput(f"model '{name}': parameters must be an object")
        unknown = sorted(set(parameters) - _FIELDS)
        if unknown:
            raise InvalidInput(f"model '{name}': unknown parameters {unknown}; expected some of {sorted(_FIELDS)}")
        uri, fmt, lazy = parameters.get("storage_uri"), parameters.get("model_format"), parameters.get("lazy", True)
        if not isinstance(uri, str) or not uri:
            raise InvalidInput(f"model '{name}': parameters.storage_uri must be a non-empty string")
        if fmt is not None and (not isinstance(fmt, str) or not fmt):
            raise InvalidInput(f"model '{name}': parameters.model_format must be a non-empty string")
        if not isinstance(lazy, bool):
            raise InvalidInput(f"model '{name}': parameters.lazy must be true or false")
        memory = parameters.get("memory")
        try:
            declared = None if memory is None else parse_bytes(memory, "parameters.memory")
        except ValueError as e:
            raise InvalidInput(f"model '{name}': {e}") from None
        return cls(uri, fmt, declared, lazy)


@dataclass(frozen=True, slots=True)
class Backoff:
    """A model's load failures in a row, and the earliest time (monotonic seconds) it may be tried again."""

    failures: int = 0
    retry_at: float = 0.0

    def failed(self, now: float) -> Backoff:
        wait = min(FIRST_RETRY_S * 2**self.failures, LAST_RETRY_S)
        return Backoff(self.failures + 1, now + wait)

    def due(self, now: float) -> bool:
        return now >= self.retry_at
