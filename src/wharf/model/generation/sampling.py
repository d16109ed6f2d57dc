"""The next token of each sequence in a batch: greedy (temperature 0), or sampled with temperature and top-p from a
generator of the sequence's own (seeded by the request's `seed`, so a seeded request repeats whatever it is batched
with). Greedy rows take one argmax over the batch; sampled rows cost a softmax and a sort of the vocabulary each.
"""

from __future__ import annotations

import torch

from wharf.model.generation.params import SamplingParams


def generator_of(params: SamplingParams) -> torch.Generator | None:
    """The random source of a sampled sequence (None for greedy ones)."""
    if params.greedy:
        return None
    generator = torch.Generator()
    if params.seed is None:
        generator.seed()
    else:
        generator.manual_seed(params.seed)
    return generator


def next_tokens(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> list[int]:
    """One token per row of `logits` ([batch, vocabulary]), row i chosen as `params[i]` says."""
    chosen = logits.argmax(dim=-1).tolist()
    for row, (p, generator) in enumerate(zip(params, generators, strict=True)):
        if not p.greedy:
            chosen[row] = _sample(logits[row], p, generator)
    return chosen


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    probabilities = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probabilities.sort(descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the tokens more likely than each
        sorted_p[before >= params.top_p] = 0.0  # keeps the smallest set reaching top_p (at least one token)
        probabilities = torch.zeros_like(probabilities).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probabilities.cpu(), 1, generator=generator))
