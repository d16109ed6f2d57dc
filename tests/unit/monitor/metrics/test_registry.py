"""The registry: every metric's name, path, gauge and request body, and the one-off `compute`."""

from __future__ import annotations

import pytest

from tests.unit.monitor.metrics.fakes import FrameRows
from wharf.errors import InvalidInput, NotFound
from wharf.monitor.metrics.registry import METRICS, compute, find
from wharf.monitor.metrics.requests import (
    ApproxKSTestRequest,
    BinnedDriftRequest,
    DriftRequest,
    GroupRequest,
    PerformanceRequest,
)


def test_every_metric_its_path_gauge_and_body() -> None:
    table = {name: (m.path, m.gauge, m.request) for name, m in METRICS.items()}
    assert table == {
        "MEANSHIFT": ("/metrics/drift/meanshift", "trustyai_meanshift", DriftRequest),
        "KSTEST": ("/metrics/drift/kstest", "trustyai_kstest", DriftRequest),
        "APPROXKSTEST": ("/metrics/drift/approxkstest", "trustyai_approxkstest", ApproxKSTestRequest),
        "JENSENSHANNON": ("/metrics/drift/jensenshannon", "trustyai_jensenshannon", BinnedDriftRequest),
        "PSI": ("/metrics/drift/psi", "trustyai_psi", BinnedDriftRequest),
        "CHISQUARE": ("/metrics/drift/chisquare", "trustyai_chisquare", DriftRequest),
        "SPD": ("/metrics/group/fairness/spd", "trustyai_spd", GroupRequest),
        "DIR": ("/metrics/group/fairness/dir", "trustyai_dir", GroupRequest),
        "EOD": ("/metrics/group/fairness/eod", "trustyai_eod", GroupRequest),
        "AOD": ("/metrics/group/fairness/aod", "trustyai_aod", GroupRequest),
        "EQODDS": ("/metrics/group/fairness/eqodds", "trustyai_eqodds", GroupRequest),
        "ACCURACY": ("/metrics/performance/accuracy", "wharf_accuracy", PerformanceRequest),
        "MAE": ("/metrics/performance/mae", "wharf_mae", PerformanceRequest),
        "RMSE": ("/metrics/performance/rmse", "wharf_rmse", PerformanceRequest),
    }


def test_spd_and_dir_also_at_trustyais_deprecated_paths() -> None:
    assert {name: m.paths[1:] for name, m in METRICS.items() if m.paths[1:]} == {
        "SPD": ("/metrics/spd",),
        "DIR": ("/metrics/dir",),
    }


def test_find_takes_any_case_and_names_the_metrics_there_are() -> None:
    assert find("spd") is find("SPD") is METRICS["SPD"]
    with pytest.raises(NotFound, match="no metric 'fourier' .*meanshift, kstest"):
        find("fourier")


def test_parse_fills_in_the_metric_and_its_default_threshold() -> None:
    request = METRICS["DIR"].parse(
        {
            "modelId": "m",
            "protectedAttribute": "g",
            "privilegedAttribute": 1,
            "unprivilegedAttribute": 0,
            "outcomeName": "o",
            "favorableOutcome": 1,
            "metricName": "dir",
        }
    )
    assert (request.metric_name, request.threshold_delta, request.batch_size) == ("DIR", 0.2, 5000)
    assert (
        METRICS["KSTEST"].parse({"modelId": "m", "referenceTag": "T", "thresholdDelta": 0.01}).threshold_delta == 0.01
    )


def test_parse_refuses_a_body_that_is_not_an_object() -> None:
    with pytest.raises(InvalidInput, match="body: Input should be a valid dictionary"):
        METRICS["SPD"].parse([1, 2])


def test_compute_of_an_unknown_metric(credit: FrameRows) -> None:
    with pytest.raises(NotFound, match="no metric 'fmmd'"):
        compute("fmmd", {}, credit)
