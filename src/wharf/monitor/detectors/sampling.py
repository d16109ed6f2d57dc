"""`Sampler`: which logged inferences get a check that costs model calls (adversarial detection), decided apart
from the check itself so that it can be seeded and tested."""

from __future__ import annotations

import random

from wharf.errors import ConfigurationError


class Sampler:
    """Takes each inference with probability `rate` (0: none, 1: all), from its own generator seeded with `seed`."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ConfigurationError(f"the sampling rate must be in [0, 1], got {rate}")
        self.rate = rate
        self._random = random.Random(seed)

    def take(self) -> bool:
        """Whether to check the next inference."""
        return self.rate >= 1 or (self.rate > 0 and self._random.random() < self.rate)
