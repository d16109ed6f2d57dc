"""The bandit rollout mode: its annotations, and the reconciler moving a canary's share by the rewards of its
revisions, then promoting it or rolling it back (over the real controller, store and reconciler)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.bandit import ArmStats
from wharf.control.bandit_rollout import BanditRollouts, Canary
from wharf.control.controller import Controller
from wharf.control.plan import ISVC_KIND
from wharf.control.spec import RolloutPolicy, SpecError, parse_manifests
from wharf.gateway.bandits import service_bandit

from .fakes import control_plane
from .test_controller import isvc, run

V1, V2 = "who-predictor-00001", "who-predictor-00002"
BANDIT = {"serving.wharf.dev/rollout": "bandit", "serving.wharf.dev/bandit-min-rewards": "10"}


def annotated(manifest: str, annotations: dict[str, str]) -> str:
    shown = ", ".join(f"{key}: '{value}'" for key, value in annotations.items())
    return manifest.replace(
        "metadata: {name: who, namespace: default}",
        f"metadata: {{name: who, namespace: default, annotations: {{{shown}}}}}",
    )


def rewarded(name: str, ones: int, zeros: int) -> ArmStats:
    arm = ArmStats(name)
    for reward in [1.0] * ones + [0.0] * zeros:
        arm = arm.pulled().rewarded(reward)
    return arm


class Arms:
    """The bandit statistics the control plane keeps, as the test sets them."""

    def __init__(self) -> None:
        self.table: dict[str, dict[str, ArmStats]] = {}

    def __call__(self, bandit: str) -> dict[str, ArmStats]:
        return self.table.get(bandit, {})

    def set(self, *arms: ArmStats) -> None:
        self.table[service_bandit("default", "who")] = {arm.name: arm for arm in arms}


@pytest.fixture
def arms() -> Arms:
    return Arms()


@pytest.fixture
def controller(tmp_path: Path, arms: Arms) -> Controller:
    controller = control_plane(tmp_path)
    controller.reconciler.bandits = BanditRollouts(arms)
    run(controller.apply(annotated(isvc("who"), BANDIT)))
    run(controller.apply(annotated(isvc("who", who="b", canary=20), BANDIT)))
    return controller


def predictor(controller: Controller) -> dict[str, Any]:
    resource = controller.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    return resource.status["components"]["predictor"]


def traffic(controller: Controller) -> dict[str, int]:
    """The predictor's split as the reconciler wants it (the fake backend readies no replica to move it to)."""
    resource = controller.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    return resource.status["routing"]["components"]["predictor"]["desired"]


def test_the_canary_keeps_the_spec_s_percent_until_both_revisions_have_enough_rewards(
    controller: Controller, arms: Arms
) -> None:
    arms.set(rewarded(V1, 8, 2), rewarded(V2, 5, 0))
    run(controller.reconciler.resync())
    assert traffic(controller) == {V2: 20, V1: 80}
    assert status(controller)["bandit"] == {
        "predictor": {"revision": V2, "against": V1, "percent": 20, "waiting": f"warm-up: {V2} has 5 of 10 rewards"}
    }


def status(controller: Controller) -> dict[str, Any]:
    resource = controller.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    return resource.status


def test_the_canary_s_share_follows_its_chance_of_being_better(controller: Controller, arms: Arms) -> None:
    arms.set(rewarded(V1, 6, 6), rewarded(V2, 8, 4))
    run(controller.reconciler.resync())
    share = traffic(controller)
    assert 50 < share[V2] < 95 and share[V2] % 5 == 0 and share[V1] == 100 - share[V2]
    trial = status(controller)["bandit"]["predictor"]
    assert trial == {"revision": V2, "against": V1, "percent": share[V2], "chanceBetter": trial["chanceBetter"]}
    assert abs(100 * trial["chanceBetter"] - share[V2]) <= 3
    arms.set(rewarded(V1, 8, 4), rewarded(V2, 6, 6))
    run(controller.reconciler.resync())
    assert 5 <= traffic(controller)[V2] < 50
    assert predictor(controller)["latestRolledoutRevision"] == V1


def test_a_better_canary_is_promoted(controller: Controller, arms: Arms) -> None:
    arms.set(rewarded(V1, 10, 30), rewarded(V2, 35, 5))
    run(controller.reconciler.resync())
    assert traffic(controller) == {V2: 100}
    rolled_out = predictor(controller)
    assert (rolled_out["latestRolledoutRevision"], rolled_out["previousRolledoutRevision"]) == (V2, V1)
    run(controller.reconciler.resync())  # promoted stays promoted, the spec's canaryTrafficPercent notwithstanding
    assert traffic(controller) == {V2: 100}
    assert "bandit" not in status(controller)  # no trial any more


def test_a_worse_canary_is_rolled_back_saying_why(controller: Controller, arms: Arms) -> None:
    arms.set(rewarded(V1, 35, 5), rewarded(V2, 10, 30))
    run(controller.reconciler.resync())
    assert traffic(controller) == {V1: 100}
    resource = controller.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    rolled_back = next(c for c in resource.status["conditions"] if c["type"] == "RolledBack")
    assert rolled_back["reason"] == "CanaryFailed"
    assert rolled_back["message"].startswith(f"{V2}: canary {V2} lost its bandit rollout: P({V2} better than {V1})")


def test_the_gateway_is_told_which_services_roll_out_by_bandit(controller: Controller, tmp_path: Path) -> None:
    """Only the front component's answers (the service's host) carry their revision and take feedback."""
    [service] = [s for s in controller.reconciler.gateway.tables[-1].services if s.name == "who"]
    assert service.bandit
    plain = control_plane(tmp_path / "plain")
    run(plain.apply(isvc("who")))
    assert not any(s.bandit for s in plain.reconciler.gateway.tables[-1].services)


def test_without_the_annotation_rewards_change_nothing(tmp_path: Path, arms: Arms) -> None:
    controller = control_plane(tmp_path)
    controller.reconciler.bandits = BanditRollouts(arms)
    run(controller.apply(isvc("who")))
    run(controller.apply(isvc("who", who="b", canary=20)))
    arms.set(rewarded(V1, 35, 5), rewarded(V2, 10, 30))
    run(controller.reconciler.resync())
    assert traffic(controller) == {V2: 20, V1: 80}


def test_judging_only_bandit_rollouts() -> None:
    bandits = BanditRollouts(lambda key: {V2: rewarded(V2, 30, 0), V1: rewarded(V1, 0, 30)})
    canary = Canary("predictor", V2, V1, 10)
    assert bandits.judge("default", "who", RolloutPolicy(), [canary]) == []
    bandit = RolloutPolicy(rollout="bandit")
    [(judged, verdict)] = bandits.judge("default", "who", bandit, [canary])
    assert judged == canary and verdict.action == "promote"
    assert bandits.percent(bandit, V2, 10) == 10  # no share kept for a promoted canary
    assert BanditRollouts().judge("default", "who", bandit, [canary])[0][1].action == "try"  # no rewards known


# -- the annotations ---------------------------------------------------------------------------------------------


def test_the_annotations_make_the_policy() -> None:
    manifest = annotated(
        isvc("who", canary=10),
        {
            "serving.wharf.dev/rollout": "bandit",
            "serving.wharf.dev/bandit-confidence": "0.99",
            "serving.wharf.dev/bandit-min-rewards": "50",
        },
    )
    policy = parse_manifests(manifest)[0].rollout_policy
    assert (policy.bandit, policy.bandit_confidence, policy.bandit_min_rewards) == (True, 0.99, 50)
    assert not parse_manifests(isvc("who"))[0].rollout_policy.bandit


@pytest.mark.parametrize(
    ("annotations", "key", "words"),
    [
        ({"serving.wharf.dev/rollout": "thompson"}, "rollout", "must be canary"),
        (
            {"serving.wharf.dev/rollout": "bandit", "serving.wharf.dev/bandit-confidence": "0.5"},
            "bandit-confidence",
            "above 0.5 and below 1",
        ),
        (
            {"serving.wharf.dev/rollout": "bandit", "serving.wharf.dev/bandit-confidence": "1"},
            "bandit-confidence",
            "above 0.5 and below 1",
        ),
        (
            {"serving.wharf.dev/rollout": "bandit", "serving.wharf.dev/bandit-min-rewards": "0"},
            "bandit-min-rewards",
            "whole number >= 1",
        ),
        (
            {"serving.wharf.dev/bandit-min-rewards": "30"},
            "bandit-min-rewards",
            "only with serving.wharf.dev/rollout: bandit",
        ),
        (
            {"serving.wharf.dev/rollout": "canary", "serving.wharf.dev/bandit-confidence": "0.9"},
            "bandit-confidence",
            "only with serving.wharf.dev/rollout: bandit",
        ),
    ],
)
def test_a_bad_annotation_is_refused_naming_it(annotations: dict[str, str], key: str, words: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_manifests(annotated(isvc("who", canary=10), annotations))
    [(path, reason)] = refused.value.problems
    assert path == f'metadata.annotations["serving.wharf.dev/{key}"]'
    assert words in reason
