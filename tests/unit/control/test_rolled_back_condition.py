"""The `RolledBack` condition of an InferenceService: set, with how and why, when its latest revision is rolled back
(by the canary judge or by a command), kept out of Ready's message, and gone once the revision is back in play."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.control.controller import Controller
from wharf.control.plan import ISVC_KIND
from wharf.gateway import RevisionStats

from .fakes import Gateway, control_plane
from .test_controller import isvc, run


class JudgedGateway(Gateway):
    """A gateway whose statistics the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, RevisionStats] = {}

    def stats(self) -> dict[str, Any]:
        return self.figures


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    return control_plane(tmp_path, gateway=JudgedGateway())


def guarded(who: str, canary: int) -> str:
    """The `isvc` manifest with a canary judged on its error rate (20% at most)."""
    manifest = isvc("who", who=who, canary=canary)
    return manifest.replace(
        "metadata: {name: who, namespace: default}",
        "metadata: {name: who, namespace: default, annotations: {serving.wharf.dev/auto-rollback-error-rate: '0.2'}}",
    )


def conditions(controller: Controller) -> dict[str, dict[str, str]]:
    resource = controller.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    return {c["type"]: c for c in resource.status["conditions"]}


def test_an_automatic_rollback_and_a_commanded_one_each_say_how_and_why(controller: Controller) -> None:
    run(controller.apply(isvc("who")))
    assert "RolledBack" not in conditions(controller)
    run(controller.apply(guarded("b", canary=50)))
    gateway: JudgedGateway = controller.reconciler.gateway  # type: ignore[assignment]
    gateway.figures["who-predictor-00002"] = RevisionStats(0, 40, 20, 0.5, 1.0, 2.0)
    run(controller.reconciler.resync())

    rolled_back = conditions(controller)["RolledBack"]
    assert (rolled_back["status"], rolled_back["reason"]) == ("True", "CanaryFailed")
    assert rolled_back["message"] == (
        "who-predictor-00002: canary who-predictor-00002 failed 50% of its requests (limit 20%)"
    )
    assert "failed" not in conditions(controller)["Ready"]["message"]

    gateway.figures.clear()
    run(controller.apply(guarded("b", canary=40)))  # a new percent: the canary is back in play
    assert "RolledBack" not in conditions(controller)

    run(controller.rollback("default", "who"))
    rolled_back = conditions(controller)["RolledBack"]
    assert (rolled_back["status"], rolled_back["reason"]) == ("True", "RollbackRequested")
    assert rolled_back["message"] == "who-predictor-00002: rolled back by `wharf rollout rollback`"
