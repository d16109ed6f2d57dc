"""ArmStats: the next state for each event, the statistics it keeps, and its JSON round trip."""

from __future__ import annotations

import json

import pytest

from wharf.bandit import ArmStats


def test_pulls_and_rewards_are_counted_apart() -> None:
    arm = ArmStats("v1").pulled().pulled().pulled().rewarded(1).rewarded(0)
    assert (arm.pulls, arm.rewards, arm.successes, arm.failures) == (3, 2, 1.0, 1.0)
    assert arm.mean == 0.5
    assert ArmStats("v1").pulled() == ArmStats("v1", pulls=1)  # a value: the old state stays as it was


def test_mean_and_variance_of_real_rewards() -> None:
    arm = ArmStats("v1")
    assert arm.mean is None and arm.variance is None
    for reward in (2.0, 4.0, 9.0):
        arm = arm.rewarded(reward)
    assert arm.mean == pytest.approx(5.0)
    assert arm.variance == pytest.approx(13.0)
    assert (arm.successes, arm.failures) == (0.0, 0.0)  # rewards outside [0, 1] are not Bernoulli outcomes


def test_fractional_rewards_count_as_fractional_outcomes() -> None:
    arm = ArmStats("v1").rewarded(0.25)
    assert (arm.successes, arm.failures) == (0.25, 0.75)


def test_json_round_trip_and_older_states() -> None:
    arm = ArmStats("v1", pulls=4).rewarded(1).rewarded(0.5)
    assert ArmStats.from_dict(json.loads(json.dumps(arm.as_dict()))) == arm
    assert ArmStats.from_dict({"name": "v2", "pulls": 3}) == ArmStats("v2", pulls=3)
