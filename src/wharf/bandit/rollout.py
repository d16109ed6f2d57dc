"""A bandit rollout's verdict: how much traffic the latest revision gets, and when the trial ends.

Each of the two revisions (the latest, under trial, and the previous, rolled out) is an arm with 0/1 rewards
(rewards in [0, 1] count as fractional outcomes, see `arms`). `judge_rollout` applies, in order:

1. Warm-up: until both have `min_rewards` rewards, the latest keeps `start_percent` (the spec's canary percent).
2. The chance that the latest is the better, P(p_latest > p_previous) under their Beta(1 + successes,
   1 + failures) posteriors (`chance_better`, computed by numerical integration, no randomness).
3. At least `confidence`: promote the latest; at most 1 - `confidence`: roll it back.
4. Otherwise the latest gets that chance of the traffic (what Thompson sampling between the two would give it),
   rounded to a multiple of `STEP_PERCENT` (so that the split, and the events recording it, move in steps rather
   than with each reward) and kept within STEP_PERCENT to 100 - STEP_PERCENT, so that both keep being tried.

Pure: nothing here reads a clock, draws at random or does I/O. `chance_better` costs a few milliseconds (a grid
of 2,000 points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import ThompsonSampling

_BETA_BERNOULLI = ThompsonSampling()  # what judges a rollout: the rewards it takes
#: The step the latest revision's share moves by, and the least share either revision keeps while undecided.
STEP_PERCENT = 5
#: Points of the grid `chance_better` integrates over.
_GRID = 2000
#: How many standard deviations either side of each posterior's mean the grid covers.
_SPAN_SD = 12


@dataclass(frozen=True, slots=True)
class RolloutVerdict:
    """What the rollout does next: keep trying with `latest_percent` of the traffic, promote or roll back."""

    action: Literal["try", "promote", "roll_back"]
    latest_percent: int
    chance_better: float | None  # P(latest better than previous); None during the warm-up
    reason: str


def judge_rollout(
    latest: ArmStats, previous: ArmStats, confidence: float, min_rewards: int, start_percent: int
) -> RolloutVerdict:
    """The verdict on `latest` against `previous` (see the module's docstring for the rules)."""
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be above 0.5 and below 1, got {confidence}")
    short = [arm for arm in (latest, previous) if arm.rewards < min_rewards]
    if short:
        waiting = ", ".join(f"{arm.name} has {arm.rewards} of {min_rewards} rewards" for arm in short)
        return RolloutVerdict("try", start_percent, None, f"warm-up: {waiting}")
    chance = chance_better(latest, previous)
    odds = f"P({latest.name} better than {previous.name}) = {chance:.3f}"
    if chance >= confidence:
        return RolloutVerdict("promote", 100, chance, f"{odds} >= {confidence:g}")
    if chance <= 1 - confidence:
        return RolloutVerdict("roll_back", 0, chance, f"{odds} <= {1 - confidence:.3g}")
    percent = min(max(STEP_PERCENT * round(100 * chance / STEP_PERCENT), STEP_PERCENT), 100 - STEP_PERCENT)
    return RolloutVerdict("try", percent, chance, f"{odds}: {percent}% of the traffic to {latest.name}")


def check_reward(reward: float) -> float:
    """`reward` as a float if a bandit rollout learns from it: a finite number from 0 to 1 (InvalidInput naming
    `reward` if not)."""
    return _BETA_BERNOULLI.check_reward(reward)


def chance_better(a: ArmStats, b: ArmStats) -> float:
    """P(p_a > p_b) for p_a ~ Beta(1 + a.successes, 1 + a.failures) and p_b likewise: the integral of p_a's density
    times p_b's distribution function, on a grid over where both posteriors lie (trapezoid rule)."""
    shapes = [(1.0 + arm.successes, 1.0 + arm.failures) for arm in (a, b)]
    lo, hi = 1.0, 0.0
    for alpha, beta in shapes:
        mean = alpha / (alpha + beta)
        sd = math.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
        lo, hi = min(lo, mean - _SPAN_SD * sd), max(hi, mean + _SPAN_SD * sd)
    lo, hi = max(lo, 0.0), min(hi, 1.0)
    step = (hi - lo) / _GRID
    xs = [lo + i * step for i in range(_GRID + 1)]
    density_a = _beta_density(xs, *shapes[0])
    density_b = _beta_density(xs, *shapes[1])
    total, below_b, previous = 0.0, 0.0, 0.0  # below_b: P(p_b <= x), accumulated along the grid
    for i in range(1, _GRID + 1):
        below_b += (density_b[i - 1] + density_b[i]) * step / 2
        current = density_a[i] * below_b
        total += (previous + current) * step / 2
        previous = current
    norm_b = below_b  # the grid's mass of p_b (1 up to the rule's error): normalise by it
    norm_a = sum((density_a[i - 1] + density_a[i]) * step / 2 for i in range(1, _GRID + 1))
    return min(max(total / (norm_a * norm_b), 0.0), 1.0)


def _beta_density(xs: list[float], alpha: float, beta: float) -> list[float]:
    """Beta(alpha, beta)'s density at each of `xs` (alpha, beta >= 1: finite on [0, 1])."""
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    return [math.exp(log_norm + _log_power(x, alpha - 1) + _log_power(1 - x, beta - 1)) for x in xs]


def _log_power(x: float, power: float) -> float:
    """log(x ** power), with 0 ** 0 = 1 (a flat density at the grid's ends)."""
    if power == 0:
        return 0.0
    return power * math.log(x) if x > 0 else -math.inf
