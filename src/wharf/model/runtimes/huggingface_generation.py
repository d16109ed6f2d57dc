"""The Hugging Face runtime's text-generation task: a causal LM served through the OpenAI API with continuous batching.

The model is a transformers directory (`save_pretrained`, e.g. an architecture ending in `ForCausalLM`) or a GGUF
file, which transformers de-quantizes into its own model on load (the `gguf` package reads it; the tokenizer comes
from the same file). The context is `max_model_len` tokens when set, else the model's `max_position_embeddings`.
Generation stops at the tokenizer's end-of-sequence token and the generation config's `eos_token_id`s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from wharf.errors import InvalidInput
from wharf.model.generation.engine import Engine
from wharf.model.generation.generator import TextGenerator
from wharf.protocol.v2 import TensorSpec


class TextGeneration:
    """A causal LM, its tokenizer and its generation engine."""

    name = "text-generation"

    def __init__(
        self,
        directory: Path,
        device: torch.device,
        dtype: torch.dtype,
        gguf_file: str | None,
        max_model_len: int | None,
        max_batch_sequences: int,
        max_batch_tokens: int,
    ) -> None:
        options: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            options["gguf_file"] = gguf_file
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **options)
        model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **options)
        model.to(device).eval()
        positions = getattr(model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        engine = Engine(
            model,
            self.tokenizer,
            _stop_tokens(self.tokenizer, model.generation_config),
            max_batch_sequences,
            max_batch_tokens,
            name=directory.name,
        )
        self.generator = TextGenerator(self.tokenizer, engine, min(max_model_len or positions, positions))

    def outputs(self) -> list[TensorSpec]:
        return []

    def __call__(self, texts: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        raise InvalidInput("a text-generation model answers the OpenAI API: POST /openai/v1/completions or chat")

    def close(self) -> None:
        self.generator.close()


def _stop_tokens(tokenizer: Any, config: Any) -> set[int]:
    found = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    eos = getattr(config, "eos_token_id", None)
    found.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return found
