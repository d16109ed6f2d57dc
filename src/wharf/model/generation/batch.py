"""The running sequences' KV caches as one left-padded batch, and the forward passes over it.

A sequence joins after its own prefill (its prompt alone through the model, batch 1: the same computation as
unbatched generation); its cache is then padded on the left to the batch's length and concatenated to the batch's.
Each decode step feeds one token per sequence, with a 2-D attention mask that hides the padding and explicit
position ids (each sequence's own count of real tokens), so padding changes no result but through floating-point
reduction order. A sequence leaves by dropping its row; columns that became padding in every row are trimmed.

Cost: joining and leaving copy the batch's cache once (like every step of transformers' DynamicCache, which grows
by concatenation); a step costs one forward pass of `batch` tokens over the longest cache in the batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def prefill(model: Any, ids: list[int]) -> tuple[DynamicCache, torch.Tensor]:
    """The cache of the prompt `ids` and the logits of the token after it ([vocabulary])."""
    device = model.device
    cache = DynamicCache(config=model.config)
    input_ids = torch.tensor([ids], device=device)
    with torch.inference_mode():
        out = model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
    return cache, out.logits[0, -1]


class DecodeBatch:
    """The caches, attention mask and next positions of the running sequences, one row each."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=model.device)
        self.positions = torch.zeros((0,), dtype=torch.long, device=model.device)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def join(self, cache: DynamicCache, length: int) -> None:
        """Add a sequence whose prefilled `cache` holds `length` tokens, as the last row."""
        width = self.mask.shape[1]
        if self.cache is None or not len(self):
            self.cache, self.mask = cache, torch.ones((1, length), dtype=torch.long, device=self.mask.device)
            self.positions = torch.tensor([length], device=self.mask.device)
            return
        total = max(width, length)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, total), _left_pad(theirs.keys, total)])
            mine.values = torch.cat([_left_pad(mine.values, total), _left_pad(theirs.values, total)])
        row = torch.ones((1, length), dtype=torch.long, device=self.mask.device)
        self.mask = torch.cat([F.pad(self.mask, (total - width, 0)), F.pad(row, (total - length, 0))])
        self.positions = torch.cat([self.positions, torch.tensor([length], device=self.mask.device)])

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, in that order, and trim the columns that are padding in all of them."""
        if len(rows) == len(self):
            return
        if not rows:
            self.cache = None
            self.mask = self.mask[:0, :0]
            self.positions = self.positions[:0]
            return
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int((mask.sum(dim=0) == 0).long().cumprod(dim=0).sum())  # leading all-padding columns
        self.mask, self.positions = mask[:, start:], self.positions.index_select(0, index)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]

    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its next token; the logits of the token after it ([rows, vocabulary])."""
        device = self.mask.device
        self.mask = torch.cat([self.mask, torch.ones((len(self), 1), dtype=torch.long, device=device)], dim=1)
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor(tokens, device=device).unsqueeze(1),
                attention_mask=self.mask,
                position_ids=self.positions.unsqueeze(1),
                cache=self.cache,  # grown in place by the step's keys and values
                use_cache=True,
            )
        self.positions = self.positions + 1
        return out.logits[:, -1]


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """`tensor` ([batch, heads, tokens, dim]) padded with zeros on the left to `length` tokens."""
    return F.pad(tensor, (0, 0, length - tensor.shape[2], 0))
