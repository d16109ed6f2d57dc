"""Multi-armed bandits, pure and seeded like `wharf.autoscaler`: arms' statistics (`ArmStats`), the policies that
choose an arm (`EpsilonGreedy`, `UCB1`, `ThompsonSampling`, by name through `policy_from_spec`) and the verdict of a
bandit rollout between two revisions (`judge_rollout`). Nothing here reads a clock or does I/O: chance comes from a
`random.Random` passed in, and the state is kept by the control plane. Contexts (contextual bandits) are left out.
This package imports nothing else of Wharf's but `errors`.
"""

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import (
    POLICIES,
    Choice,
    EpsilonGreedy,
    Policy,
    PolicyError,
    ThompsonSampling,
    UCB1,
    policy_from_spec,
)
from wharf.bandit.rollout import RolloutVerdict, chance_better, judge_rollout

__all__ = [
    "POLICIES",
    "UCB1",
    "ArmStats",
    "Choice",
    "EpsilonGreedy",
    "Policy",
    "PolicyError",
    "RolloutVerdict",
    "ThompsonSampling",
    "chance_better",
    "judge_rollout",
    "policy_from_spec",
]
