"""Per-model settings, read from a `model-settings.json` file beside a model's artifact.

```json
{"runtime": "sklearn", "max_batch_size": 32, "max_batch_latency_ms": 2, "supports_batching": true}
```
A Hugging Face model also takes `task`, `max_model_len` and `dtype` (KServe's huggingfaceserver arguments).
Every field is optional; an unknown field is an error. What a file leaves out falls back to the server's settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wharf.errors import ConfigurationError
from wharf.model.base import Model

FILE_NAME = "model-settings.json"


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runtime: str | None = Field(None, description="model format, e.g. sklearn")
    max_batch_size: int | None = Field(None, ge=1, description="rows per predict call; 1 turns batching off")
    max_batch_latency_ms: float | None = Field(None, ge=0, description="longest wait to fill a batch")
    supports_batching: bool | None = None
    # the Hugging Face runtime's (KServe's huggingfaceserver arguments); other models refuse them
    task: str | None = Field(None, description="Hugging Face task, e.g. text-generation or text_embedding")
    max_model_len: int | None = Field(None, ge=2, description="context of a text-generation model in tokens")
    dtype: str | None = Field(None, description="the weights' type: auto, float16, bfloat16 or float32")

    def apply(self, model: Model) -> Model:
        for field in ("max_batch_size", "max_batch_latency_ms", "supports_batching"):
            value = getattr(self, field)
            if value is not None:
                setattr(model, field, value)
        runtime = {f: getattr(self, f) for f in ("task", "max_model_len", "dtype") if getattr(self, f) is not None}
        if runtime:
            configure = getattr(model, "configure_runtime", None)
            if configure is None:
                raise ConfigurationError(f"{', '.join(runtime)}: only Hugging Face models take these settings")
            configure(**runtime)
        return model


def read(path: Path) -> ModelSettings:
    """The settings in `path` (a model directory, or an artifact file whose directory is looked in)."""
    file = (path if path.is_dir() else path.parent) / FILE_NAME
    if not file.is_file():
        return ModelSettings()
    try:
        return ModelSettings.model_validate_json(file.read_bytes())
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(file)'}: {err['msg']}" for err in e.errors())
        raise ConfigurationError(f"{file}: {problems}") from None
