"""A component's rollout bookkeeping, and statuses saved before services had components."""

from __future__ import annotations

from wharf.control.reconciler import Rollout, _routed

FLAT = {  # a status as a release before transformers saved it
    "rollout": {"latest_created": "iris-predictor-00002", "latest_rolled_out": "iris-predictor-00001"},
    "routing": {
        "model": "iris",
        "traffic": {"iris-predictor-00002": 10, "iris-predictor-00001": 90},
        "desired": {"iris-predictor-00002": 10, "iris-predictor-00001": 90},
        "shadow": None,
        "timeout_s": 60,
        "container_concurrency": 0,
    },
}


def test_a_status_saved_before_components_is_the_predictors() -> None:
    rollout = Rollout.from_status(FLAT, "predictor")
    assert rollout == Rollout("iris-predictor-00002", "iris-predictor-00001")
    assert rollout.canary == "iris-predictor-00002"
    assert Rollout.from_status(FLAT, "transformer") is None
    assert sorted(set(_routed(FLAT))) == ["iris-predictor-00001", "iris-predictor-00002"]


def test_a_canary_rolls_back_and_a_promoted_revision_goes_back_to_the_one_before() -> None:
    canary = Rollout("p-2", "p-1")
    assert canary.traffic(10) == {"p-2": 10, "p-1": 90}
    assert canary.roll_back("bad").traffic(10) == {"p-1": 100}
    promoted = canary.advance("p-2", None)
    assert (promoted.latest_rolled_out, promoted.previous_rolled_out) == ("p-2", "p-1")
    assert promoted.roll_back("bad").traffic(None) == {"p-1": 100}
