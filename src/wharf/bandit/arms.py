"""What a bandit knows of one arm: how often it was pulled and the rewards it earned.

An `ArmStats` is a value: `pulled()` and `rewarded(r)` return the next state, so whoever keeps the state (the
control plane's store) applies each event in one place and can save the result as JSON (`as_dict`, `from_dict`).
Pulls are counted when a request is routed; rewards arrive later, or never, so `rewards` counts those
received, which may be fewer than the pulls.

Rewards in [0, 1] also count towards the Beta posterior of a 0/1 reward as fractional outcomes (a reward r adds
r successes and 1 - r failures, which for 0/1 rewards is the plain count); a reward outside [0, 1] counts only
towards the mean and variance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wharf.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ArmStats:
    """One arm's pulls and rewards: `reward_sum` and `reward_sq_sum` over the `rewards` received, and
    `successes` + `failures` those of them in [0, 1] (the Beta posterior's counts over a uniform prior)."""

    name: str
    pulls: int = 0
    rewards: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    successes: float = 0.0
    failures: float = 0.0

    def pulled(self) -> ArmStats:
        """The arm once a request was routed to it."""
        return dataclasses.replace(self, pulls=self.pulls + 1)

    def rewarded(self, reward: float) -> ArmStats:
        """The arm once one of its answers earned `reward` (a finite number; InvalidInput naming `reward` else)."""
        if not isinstance(reward, (int, float)) or isinstance(reward, bool) or not math.isfinite(reward):
            raise InvalidInput(f"reward: must be a finite number, got {reward!r}")
        reward = float(reward)
        unit = 0.0 <= reward <= 1.0
        return dataclasses.replace(
            self,
            rewards=self.rewards + 1,
            reward_sum=self.reward_sum + reward,
            reward_sq_sum=self.reward_sq_sum + reward * reward,
            successes=self.successes + (reward if unit else 0.0),
            failures=self.failures + (1.0 - reward if unit else 0.0),
        )

    @property
    def mean(self) -> float | None:
        """The mean reward received, None before the first."""
        return self.reward_sum / self.rewards if self.rewards else None

    @property
    def variance(self) -> float | None:
        """The sample variance of the rewards (n - 1 in the denominator), None before the second."""
        if self.rewards < 2:
            return None
        n = self.rewards
        return max((self.reward_sq_sum - self.reward_sum * self.reward_sum / n) / (n - 1), 0.0)

    def as_dict(self) -> dict[str, Any]:
        """The arm as JSON-able plain data (what `from_dict` reads back)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ArmStats:
        """An arm from `as_dict`'s data; fields missing count as zero (a state saved before they existed)."""
        known = {f.name for f in dataclasses.fields(ArmStats)}
        return ArmStats(**{k: v for k, v in data.items() if k in known})
