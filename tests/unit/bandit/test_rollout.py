"""A bandit rollout's verdict and the chance that one revision is the better, checked against closed forms."""

from __future__ import annotations

import math
import random

import pytest

from wharf.bandit import ArmStats, chance_better, judge_rollout
from wharf.bandit.rollout import check_reward
from wharf.errors import InvalidInput


def arm(name: str, successes: int, failures: int) -> ArmStats:
    """An arm with 0/1 rewards: `successes` ones and `failures` zeros."""
    n = successes + failures
    return ArmStats(
        name, pulls=n, rewards=n, reward_sum=successes, reward_sq_sum=successes, successes=successes, failures=failures
    )


def exact_chance_better(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(X > Y), X ~ Beta(a1, b1), Y ~ Beta(a2, b2), a1 whole (Evan Miller's closed form)."""

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return sum(
        math.exp(log_beta(a2 + i, b1 + b2) - math.log(b1 + i) - log_beta(1 + i, b1) - log_beta(a2, b2))
        for i in range(a1)
    )


@pytest.mark.parametrize(("a", "b"), [((0, 0), (0, 0)), ((1, 0), (0, 0)), ((3, 1), (3, 4)), ((80, 20), (70, 30))])
def test_chance_better_matches_the_closed_form(a: tuple[int, int], b: tuple[int, int]) -> None:
    got = chance_better(arm("a", *a), arm("b", *b))
    assert got == pytest.approx(exact_chance_better(a[0] + 1, a[1] + 1, b[0] + 1, b[1] + 1), abs=1e-4)


def test_chance_better_of_sharp_posteriors_matches_sampling() -> None:
    a, b = arm("a", 8100, 1900), arm("b", 8000, 2000)
    rng = random.Random(0)
    sampled = sum(rng.betavariate(8101, 1901) > rng.betavariate(8001, 2001) for _ in range(20_000)) / 20_000
    assert chance_better(a, b) == pytest.approx(sampled, abs=0.01)
    assert chance_better(a, b) + chance_better(b, a) == pytest.approx(1.0, abs=1e-6)


def test_warm_up_keeps_the_spec_s_canary_percent() -> None:
    verdict = judge_rollout(arm("v2", 3, 1), arm("v1", 30, 10), confidence=0.95, min_rewards=20, start_percent=10)
    assert (verdict.action, verdict.latest_percent, verdict.chance_better) == ("try", 10, None)
    assert verdict.reason == "warm-up: v2 has 4 of 20 rewards"


def test_a_clearly_better_latest_is_promoted() -> None:
    verdict = judge_rollout(arm("v2", 45, 5), arm("v1", 25, 25), confidence=0.95, min_rewards=20, start_percent=10)
    assert (verdict.action, verdict.latest_percent) == ("promote", 100)
    assert verdict.chance_better is not None and verdict.chance_better > 0.99
    assert verdict.reason.startswith("P(v2 better than v1) = ")


def test_a_clearly_worse_latest_is_rolled_back() -> None:
    verdict = judge_rollout(arm("v2", 5, 45), arm("v1", 25, 25), confidence=0.95, min_rewards=20, start_percent=10)
    assert (verdict.action, verdict.latest_percent) == ("roll_back", 0)


def test_while_undecided_the_latest_gets_its_chance_of_being_better() -> None:
    verdict = judge_rollout(arm("v2", 24, 16), arm("v1", 22, 18), confidence=0.95, min_rewards=20, start_percent=10)
    assert verdict.action == "try"
    assert verdict.chance_better is not None and 0.05 < verdict.chance_better < 0.95
    assert verdict.latest_percent % 5 == 0 and abs(verdict.latest_percent - 100 * verdict.chance_better) <= 2.5
    near_sure = judge_rollout(arm("v2", 68, 32), arm("v1", 48, 52), 0.999, 20, 10)
    assert near_sure.action == "try" and near_sure.latest_percent == 95  # both keep being tried


def test_confidence_must_say_something() -> None:
    with pytest.raises(ValueError, match="confidence"):
        judge_rollout(arm("v2", 1, 1), arm("v1", 1, 1), confidence=0.5, min_rewards=0, start_percent=10)


def test_a_rollout_learns_from_rewards_from_0_to_1() -> None:
    assert check_reward(1) == 1.0 and check_reward(0.5) == 0.5
    for wrong in (1.5, -1, float("nan")):
        with pytest.raises(InvalidInput, match="^reward: "):
            check_reward(wrong)
