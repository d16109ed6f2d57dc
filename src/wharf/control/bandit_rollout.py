"""The bandit rollout mode of InferenceServices (`serving.wharf.dev/rollout: bandit`): the reconciler's side.

The revisions of such a service are the arms of its bandit (`gateway.bandits.service_bandit`): the gateway counts
the requests each answered and the rewards clients post for them, and the control plane keeps the totals (the
`ArmSource` handed in). Only the front component answers on the service's host, so only its canary earns rewards;
a canary of a component behind it (a predictor behind a transformer) stays in the warm-up, at the spec's percent. At each resync, for each component with a canary, `judge` asks `wharf.bandit.judge_rollout`
for the verdict between the canary and the revision rolled out before it; the reconciler promotes the canary or
rolls it back, or, while the verdict is to keep trying, gives the canary the verdict's share (`percent`) in place
of the spec's `canaryTrafficPercent`; the service's status shows where each trial stands (`trial`: the share, the
chance that the canary is the better, or what the warm-up waits for). The verdicts are kept here, in memory: after
a restart the spec's percent stands until the first resync (a second) judges again from the kept rewards. A verdict costs a few milliseconds
(`chance_better`'s integral), and is remembered while the two revisions' rewards stay the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wharf.bandit import ArmStats, RolloutVerdict, judge_rollout
from wharf.control.spec import RolloutPolicy
from wharf.gateway.bandits import service_bandit

#: A bandit's key -> its arms' statistics (an arm never pulled may be missing).
ArmSource = Callable[[str], Mapping[str, ArmStats]]
#: `judge_rollout`, remembering the verdicts on the last few pairs of statistics (a few per canary under trial).
_judged = lru_cache(maxsize=256)(judge_rollout)


@dataclass(frozen=True, slots=True)
class Canary:
    """A component's revision under trial (`latest`), the revision rolled out before it, and the spec's percent."""

    component: str
    latest: str
    previous: str
    spec_percent: int


class BanditRollouts:
    """The verdicts on the canaries of bandit rollouts, and the shares they give."""

    def __init__(self, arms: ArmSource | None = None) -> None:
        self._arms = arms
        self._trials: dict[str, tuple[Canary, RolloutVerdict]] = {}  # canary revision -> its verdict to keep trying

    def judge(
        self, namespace: str, service: str, policy: RolloutPolicy, canaries: Iterable[Canary]
    ) -> list[tuple[Canary, RolloutVerdict]]:
        """The verdict on each of `service`'s canaries, if its rollout is a bandit (else none). A canary to keep
        trying takes its share at the next pass; one to promote or roll back is the caller's to act on."""
        if not policy.bandit:
            return []
        arms = self._arms(service_bandit(namespace, service)) if self._arms is not None else {}
        verdicts = []
        for canary in canaries:
            verdict = _judged(
                _rewards_of(arms, canary.latest),
                _rewards_of(arms, canary.previous),
                policy.bandit_confidence,
                policy.bandit_min_rewards,
                canary.spec_percent,
            )
            if verdict.action == "try":
                self._trials[canary.latest] = (canary, verdict)
            else:
                self._trials.pop(canary.latest, None)
            verdicts.append((canary, verdict))
        return verdicts

    def percent(self, policy: RolloutPolicy, canary: str | None, spec_percent: int | None) -> int | None:
        """The share of `canary` (a component's latest revision while under trial): the bandit's last verdict where
        the rollout is a bandit and one was given, else the spec's `canaryTrafficPercent`."""
        if not policy.bandit or canary is None or spec_percent is None or canary not in self._trials:
            return spec_percent
        return self._trials[canary][1].latest_percent

    def trial(self, policy: RolloutPolicy, canary: str | None) -> dict[str, Any] | None:
        """Where the bandit's trial of `canary` stands, for the service's status (None: no trial)."""
        if not policy.bandit or canary is None or canary not in self._trials:
            return None
        judged, verdict = self._trials[canary]
        shown: dict[str, Any] = {"revision": canary, "against": judged.previous, "percent": verdict.latest_percent}
        if verdict.chance_better is None:
            return shown | {"waiting": verdict.reason}
        return shown | {"chanceBetter": round(verdict.chance_better, 2)}

    def forget(self, keep: Collection[str]) -> None:
        """Drop the verdicts on revisions other than `keep` (those still routed to)."""
        self._trials = {name: trial for name, trial in self._trials.items() if name in keep}


def _rewards_of(arms: Mapping[str, ArmStats], name: str) -> ArmStats:
    """The statistics of arm `name` that a verdict reads: its pulls (which change with every request) left out, so
    that a verdict is remembered until a reward comes."""
    arm = arms.get(name)
    return dataclasses.replace(arm, pulls=0) if arm is not None else ArmStats(name)
