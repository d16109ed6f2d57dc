"""The continuous-batching engine on a tiny random Llama: batched greedy decoding gives the tokens of plain unbatched
decoding (no cache, one sequence), while sequences queue, join mid-run and leave; cancelling stops a sequence."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch
import transformers

from wharf.errors import WharfError

from wharf.model.generation.engine import Engine, Generation
from wharf.model.generation.params import SamplingParams

VOCABULARY = 64
WAIT_S = 300  # generous: a loaded CI machine runs two workers on its cores
pytestmark = pytest.mark.timeout(WAIT_S + 120)  # pyproject's 120 s would cut a generous wait short
PROMPTS = [[1, 2, 3], [5, 9, 11, 13, 2, 7, 8], [4], [10, 20, 30, 40, 50], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]]


class Characters:
    """A tokenizer whose token i is one character of its own, so the text spells the tokens."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(0x100 + i) for i in ids)


def _tokens(text: str) -> list[int]:
    return [ord(c) - 0x100 for c in text]


@pytest.fixture(scope="module")
def model() -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCABULARY,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return transformers.LlamaForCausalLM(config).eval()


def _unbatched(model: transformers.LlamaForCausalLM, prompt: list[int], count: int) -> list[int]:
    """Greedy decoding the plainest way: the whole sequence through the model for every token."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(count):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def _engine(model: transformers.LlamaForCausalLM, sequences: int) -> Engine:
    return Engine(model, Characters(), stop_tokens=(), max_sequences=sequences, max_tokens=10_000, name="tiny")


def test_batched_greedy_decoding_gives_the_unbatched_tokens(model: transformers.LlamaForCausalLM) -> None:
    lengths = [12, 5, 9, 16, 3, 7]
    expected = [_unbatched(model, p, n) for p, n in zip([*PROMPTS, PROMPTS[1]], lengths)]
    engine = _engine(model, sequences=3)  # some wait in the queue, then join a running batch
    sizes: list[int] = []
    engine.on_step = sizes.append

    async def run() -> list[list[int]]:
        first = [engine.submit(p, SamplingParams(n, temperature=0)) for p, n in zip(PROMPTS, lengths)]
        await asyncio.sleep(0.05)  # one more joins while the others decode
        late = engine.submit(PROMPTS[1], SamplingParams(lengths[-1], temperature=0))
        texts = await asyncio.wait_for(asyncio.gather(*(g.text() for g in [*first, late])), WAIT_S)
        assert all(g.done.finish_reason == "length" for g in [*first, late])
        return [_tokens(t) for t in texts]

    try:
        served = asyncio.run(run())
    finally:
        engine.close()
    assert served == expected
    assert max(sizes) == 3 and min(sizes) < 3  # full batches, and rows leaving and joining


def test_cancelling_stops_the_sequence_at_once(model: transformers.LlamaForCausalLM) -> None:
    engine = _engine(model, sequences=4)
    sizes: list[int] = []
    engine.on_step = sizes.append
    most = 120  # within the model's 128 positions

    async def run() -> Generation:
        generation = engine.submit(PROMPTS[0], SamplingParams(most, temperature=0.7, seed=1))
        other = engine.submit(PROMPTS[1], SamplingParams(3, temperature=0))
        pieces = aiter(generation)
        await asyncio.wait_for(anext(pieces), WAIT_S)
        generation.cancel()
        await asyncio.wait_for(other.text(), WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while engine.running:
            assert time.monotonic() < deadline, "the cancelled sequence is still running"
            await asyncio.sleep(0.01)
        return generation

    try:
        generation = asyncio.run(run())
    finally:
        engine.close()
    assert generation.done is None and engine.waiting == 0 and not engine.schedule.running
    assert len(sizes) < most - 1  # it left long before its last token


def test_a_failing_step_fails_its_sequences_and_the_engine_goes_on(model: transformers.LlamaForCausalLM) -> None:
    engine = _engine(model, sequences=4)

    async def run() -> list[int]:
        broken = engine.submit([VOCABULARY + 5], SamplingParams(3, temperature=0))  # no such token
        with pytest.raises(WharfError, match="generation failed: IndexError"):
            await asyncio.wait_for(broken.text(), WAIT_S)
        after = engine.submit(PROMPTS[0], SamplingParams(4, temperature=0))
        return _tokens(await asyncio.wait_for(after.text(), WAIT_S))

    try:
        assert asyncio.run(run()) == _unbatched(model, PROMPTS[0], 4)
    finally:
        engine.close()


def test_a_steps_tokens_reach_the_event_loop_in_one_call(model: transformers.LlamaForCausalLM) -> None:
    """Every sequence's token of a step crosses threads together: one wake-up of the event loop per step."""
    engine = _engine(model, sequences=4)
    steps: list[int] = []
    engine.on_step = steps.append
    calls = 0

    async def run() -> list[str]:
        nonlocal calls
        loop = asyncio.get_running_loop()
        handoff = loop.call_soon_threadsafe

        def counted(*args: object) -> object:
            nonlocal calls
            calls += 1
            return handoff(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        generations = [engine.submit(p, SamplingParams(8, temperature=0)) for p in PROMPTS[:4]]
        return await asyncio.wait_for(asyncio.gather(*(g.text() for g in generations)), WAIT_S)

    try:
        texts = asyncio.run(run())
    finally:
        engine.close()
    assert [_tokens(t) for t in texts] == [_unbatched(model, p, 8) for p in PROMPTS[:4]]
    assert calls <= len(steps) + len(PROMPTS[:4])  # a call per turn (prefills may take a turn of their own)
    assert calls < 4 * 8 / 2  # far fewer than one per token
