"""Bandit policies: which arm the next request goes to, given the pulls and rewards of each.

A policy is an immutable set of parameters. `choose(arms, rng)` picks one arm and says why; `probabilities(arms,
rng)` says how likely each arm is to be picked now (what a person looks at to trust the bandit). The caller passes
only the arms that may take traffic (ready ones): an arm left out gets none and the others share it. Nothing here
reads a clock, sleeps or does I/O; chance comes only from the `random.Random` passed in, so a seeded generator
replays the same choices. Choosing costs O(arms) arithmetic (and, for Thompson sampling, one random draw per arm).

Each policy applies, in order:

1. Warm-up: while an arm has fewer than `warmup_pulls` pulls, the arm with the fewest pulls is chosen (the first
   in the order given on ties), so the arms take turns.
2. Its own rule (ties go to the arm with fewer pulls, then to the first in the order given):
   - `EpsilonGreedy`: with probability ε = max(min_epsilon, epsilon x decay^t), t the pulls of all arms so far, an
     arm chosen uniformly at random (explore); otherwise the arm with the highest mean reward (exploit), an arm
     without a reward yet counting as the best (so arms whose feedback is still to come are tried in turn).
   - `UCB1` (Auer, Cesa-Bianchi and Fischer, 2002): an arm never pulled first; then the highest
     mean + sqrt(2 ln n / n_i), n the pulls of all arms and n_i the arm's. The mean is over the rewards received,
     1 (the most a reward may be) while the arm has none: pulls count at once, rewards when they come, so a late
     reward shrinks nobody's bonus. Rewards must lie in [0, 1].
   - `ThompsonSampling` with `reward="bernoulli"`: draw p_i from each arm's Beta(1 + successes, 1 + failures)
     posterior (a uniform prior; a reward r in [0, 1] counts as r successes and 1 - r failures) and choose the
     highest. Rewards must lie in [0, 1].
   - `ThompsonSampling` with `reward="gaussian"` (real-valued rewards, mean and variance unknown): an arm with
     fewer than two rewards first; then draw each arm's mean from its posterior under the Jeffreys prior,
     mean + sqrt(variance / n) x t(n - 1) (Student's t with n - 1 degrees of freedom), and choose the highest. The
     variance is the arm's, but no less than that of all arms' rewards together, so that an arm whose few rewards
     happen to be equal is not taken for certain.

Contexts (contextual bandits: choosing by the request's features) are left out: every policy here sees only the
arms' statistics.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from wharf.bandit.arms import ArmStats
from wharf.errors import ConfigurationError, InvalidInput

#: How many draws `probabilities` takes by default where it estimates them (Thompson sampling).
DEFAULT_SAMPLES = 2000


class PolicyError(ConfigurationError):
    """A policy's parameter is invalid: `field` names it as the manifest spells it (e.g. `minEpsilon`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Choice:
    """The arm a request goes to, and why."""

    arm: str
    reason: str


@dataclass(frozen=True, slots=True)
class Policy:
    """What every policy shares: the warm-up, and the interface (see the module's docstring)."""

    #: The policy's name in a manifest; its parameters are its fields, spelt in camelCase there.
    name: ClassVar[str] = ""
    warmup_pulls: int = 0

    def __post_init__(self) -> None:
        _whole(self.warmup_pulls, "warmupPulls")

    def choose(self, arms: Sequence[ArmStats], rng: random.Random) -> Choice:
        """The arm the next request goes to, among `arms` (the ready ones, at least one: ValueError if none)."""
        if not arms:
            raise ValueError("no arm to choose from: pass at least one")
        warming = self._warming(arms)
        if warming is not None:
            return Choice(warming.name, f"warm-up: {warming.pulls} of {self.warmup_pulls} pulls")
        return self._rule(arms, rng)

    def probabilities(
        self, arms: Sequence[ArmStats], rng: random.Random, samples: int = DEFAULT_SAMPLES
    ) -> dict[str, float]:
        """Each arm's chance of being chosen next (exact, or estimated from `samples` draws where the policy is
        random in a way that has no closed form); they add up to 1. No arms: an empty dict."""
        if not arms:
            return {}
        warming = self._warming(arms)
        if warming is not None:
            return {arm.name: float(arm.name == warming.name) for arm in arms}
        return self._chances(arms, rng, samples)

    def check_reward(self, reward: float) -> float:
        """`reward` as a float, if this policy can learn from it (InvalidInput naming `reward` if not)."""
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
            raise InvalidInput(f"reward: must be a finite number, got {reward!r}")
        if self.unit_rewards and not 0.0 <= reward <= 1.0:
            raise InvalidInput(f"reward: {self.name} learns from rewards from 0 to 1, got {reward!r}")
        return float(reward)

    def params(self) -> dict[str, Any]:
        """The policy's parameters as a manifest spells them (what `policy_from_spec` reads back)."""
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}

    @property
    def unit_rewards(self) -> bool:
        """Whether this policy's rewards must lie in [0, 1]."""
        return False

    # -- what each policy defines --------------------------------------------------------------------------------
    def _rule(self, arms: Sequence[ArmStats], rng: random.Random) -> Choice:
        raise NotImplementedError

    def _chances(self, arms: Sequence[ArmStats], rng: random.Random, samples: int) -> dict[str, float]:
        """By default the rule is deterministic: all the chance on what it chooses."""
        chosen = self._rule(arms, rng).arm
        return {arm.name: float(arm.name == chosen) for arm in arms}

    def _warming(self, arms: Sequence[ArmStats]) -> ArmStats | None:
        """The arm the warm-up chooses, or None once every arm has its warm-up pulls."""
        if not self.warmup_pulls:
            return None
        fewest = _fewest_pulls(arms)
        return fewest if fewest.pulls < self.warmup_pulls else None


@dataclass(frozen=True, slots=True)
class EpsilonGreedy(Policy):
    """Exploit the best mean reward, explore a random arm with a probability that decays with the pulls."""

    name: ClassVar[str] = "EpsilonGreedy"
    epsilon: float = 0.1
    decay: float = 1.0
    min_epsilon: float = 0.0

    def __post_init__(self) -> None:
        Policy.__post_init__(self)
        _unit(self.epsilon, "epsilon")
        if not (_number(self.decay, "decay") > 0 and self.decay <= 1):
            raise PolicyError("decay", f"must be above 0 and at most 1 (1: no decay), got {self.decay!r}")
        if not 0 <= _number(self.min_epsilon, "minEpsilon") <= self.epsilon:
            raise PolicyError("minEpsilon", f"must be from 0 to epsilon ({self.epsilon}), got {self.min_epsilon!r}")

    def current_epsilon(self, arms: Sequence[ArmStats]) -> float:
        """The chance of exploring now: epsilon decayed once per pull so far, no lower than min_epsilon."""
        pulls = sum(arm.pulls for arm in arms)
        decayed = self.epsilon * self.decay**pulls if self.decay < 1 else self.epsilon
        return max(self.min_epsilon, decayed)

    def _rule(self, arms: Sequence[ArmStats], rng: random.Random) -> Choice:
        epsilon = self.current_epsilon(arms)
        if rng.random() < epsilon:
            arm = arms[rng.randrange(len(arms))]
            return Choice(arm.name, f"explore (epsilon {epsilon:.3g})")
        best = self._greedy(arms)
        return Choice(best.name, f"exploit: best mean reward {_shown(best.mean)} (epsilon {epsilon:.3g})")

    def _chances(self, arms: Sequence[ArmStats], rng: random.Random, samples: int) -> dict[str, float]:
        epsilon = self.current_epsilon(arms)
        best = self._greedy(arms).name
        return {arm.name: epsilon / len(arms) + (1 - epsilon) * (arm.name == best) for arm in arms}

    @staticmethod
    def _greedy(arms: Sequence[ArmStats]) -> ArmStats:
        return _best(arms, lambda arm: math.inf if arm.mean is None else arm.mean)


@dataclass(frozen=True, slots=True)
class UCB1(Policy):
    """The highest upper confidence bound on the mean reward (rewards in [0, 1])."""

    name: ClassVar[str] = "UCB1"

    @property
    def unit_rewards(self) -> bool:
        return True

    def _rule(self, arms: Sequence[ArmStats], rng: random.Random) -> Choice:
        unpulled = next((arm for arm in arms if arm.pulls == 0), None)
        if unpulled is not None:
            return Choice(unpulled.name, "UCB1: never pulled")
        log_n = math.log(sum(arm.pulls for arm in arms))
        best = _best(arms, lambda arm: self.index(arm, log_n))
        return Choice(best.name, f"UCB1: highest bound {self.index(best, log_n):.4g} (mean {_shown(best.mean)})")

    @staticmethod
    def index(arm: ArmStats, log_n: float) -> float:
        """The arm's upper confidence bound, `log_n` the natural logarithm of all arms' pulls."""
        mean = 1.0 if arm.mean is None else arm.mean
        return mean + math.sqrt(2 * log_n / arm.pulls)


@dataclass(frozen=True, slots=True)
class ThompsonSampling(Policy):
    """Choose each arm with the posterior probability that it is the best (a draw from each posterior)."""

    name: ClassVar[str] = "ThompsonSampling"
    reward: Literal["bernoulli", "gaussian"] = "bernoulli"

    def __post_init__(self) -> None:
        Policy.__post_init__(self)
        if self.reward not in ("bernoulli", "gaussian"):
            raise PolicyError("reward", f"must be bernoulli (rewards from 0 to 1) or gaussian, got {self.reward!r}")

    @property
    def unit_rewards(self) -> bool:
        return self.reward == "bernoulli"

    def _rule(self, arms: Sequence[ArmStats], rng: random.Random) -> Choice:
        if (unknown := self._too_few_rewards(arms)) is not None:
            return Choice(unknown.name, f"Thompson: {unknown.rewards} rewards, fewer than 2")
        draws = self.draws(arms, rng)
        i = _highest(arms, draws)
        return Choice(arms[i].name, f"Thompson ({self.reward}): highest draw {draws[i]:.4g}")

    def _chances(self, arms: Sequence[ArmStats], rng: random.Random, samples: int) -> dict[str, float]:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if (unknown := self._too_few_rewards(arms)) is not None:
            return {arm.name: float(arm is unknown) for arm in arms}
        wins = [0] * len(arms)
        for _ in range(samples):
            wins[_highest(arms, self.draws(arms, rng))] += 1
        return {arm.name: won / samples for arm, won in zip(arms, wins, strict=True)}

    def draws(self, arms: Sequence[ArmStats], rng: random.Random) -> list[float]:
        """One draw of each arm's mean reward from its posterior (Gaussian: every arm has two rewards or more)."""
        if self.reward == "bernoulli":
            return [rng.betavariate(1.0 + arm.successes, 1.0 + arm.failures) for arm in arms]
        floor = _pooled_variance(arms)
        return [
            arm.reward_sum / arm.rewards
            + math.sqrt(max(arm.variance or 0.0, floor) / arm.rewards) * _student_t(arm.rewards - 1, rng)
            for arm in arms
        ]

    def _too_few_rewards(self, arms: Sequence[ArmStats]) -> ArmStats | None:
        """For Gaussian rewards, an arm with too few rewards for a posterior (the fewest pulls of them)."""
        if self.reward != "gaussian":
            return None
        short = [arm for arm in arms if arm.rewards < 2]
        return _fewest_pulls(short) if short else None


#: Policies by the name a manifest gives.
POLICIES: dict[str, type[Policy]] = {p.name: p for p in (EpsilonGreedy, UCB1, ThompsonSampling)}


def policy_from_spec(name: str, params: Mapping[str, Any] | None = None) -> Policy:
    """The policy a manifest names, with its parameters (camelCase, e.g. `warmupPulls`, `minEpsilon`); PolicyError
    naming the field (`policy`, or the parameter) when either is wrong."""
    kind = POLICIES.get(name)
    if kind is None:
        raise PolicyError("policy", f"unknown bandit policy {name!r}; known: {', '.join(POLICIES)}")
    accepted = {_camel(f.name): f.name for f in fields(kind)}
    values = {}
    for key, value in (params or {}).items():
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise PolicyError(key, f"not a parameter of {name}; its parameters: {known}")
        values[accepted[key]] = value
    return kind(**values)


# -- shared pieces -----------------------------------------------------------------------------------------------


def _fewest_pulls(arms: Sequence[ArmStats]) -> ArmStats:
    return min(arms, key=lambda arm: arm.pulls)  # min keeps the first of equals


def _best(arms: Sequence[ArmStats], score: Any) -> ArmStats:
    """The arm with the highest score; ties to fewer pulls, then to the first given."""
    return max(arms, key=lambda arm: (score(arm), -arm.pulls))  # max keeps the first of equals


def _highest(arms: Sequence[ArmStats], draws: Sequence[float]) -> int:
    """The index of the highest draw; ties to fewer pulls, then to the first given."""
    return max(range(len(arms)), key=lambda i: (draws[i], -arms[i].pulls))


def _pooled_variance(arms: Sequence[ArmStats]) -> float:
    """The variance of all the arms' rewards taken together."""
    together = ArmStats(
        "",
        rewards=sum(a.rewards for a in arms),
        reward_sum=sum(a.reward_sum for a in arms),
        reward_sq_sum=sum(a.reward_sq_sum for a in arms),
    )
    return together.variance or 0.0


def _student_t(degrees: int, rng: random.Random) -> float:
    """A draw of Student's t: a standard normal over the root of a chi-square (a gamma) per degree of freedom."""
    return rng.gauss(0.0, 1.0) / math.sqrt(rng.gammavariate(degrees / 2, 2.0) / degrees)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyError(field, f"must be a number, got {value!r}")
    return float(value)


def _unit(value: Any, field: str) -> float:
    if not 0 <= _number(value, field) <= 1:
        raise PolicyError(field, f"must be a probability from 0 to 1, got {value!r}")
    return float(value)


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(field, f"must be a whole number >= 0, got {value!r}")
    return value


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _shown(mean: float | None) -> str:
    return "none yet" if mean is None else f"{mean:.4g}"
