"""The batch step's decisions: the BatchJob a prediction runs as, and how a job's status reads (still running, what
a job that succeeded did, the message of one that failed)."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.sdk.views import resource
from wharf.control.spec import SpecError, parse_manifest
from wharf.control.spec.batchjob import BatchJob
from wharf.kfp.batch import BatchJobFailed, Scored, job_manifest, outcome


def _job(*conditions: tuple[str, str, str], **figures: int) -> Any:
    document = job_manifest("scores", "isvc/iris", "/data/in.csv", "/data/out")
    document["status"] = {
        "conditions": [{"type": kind, "status": holds, "message": message} for kind, holds, message in conditions],
        **figures,
    }
    return resource(document, BatchJob)


def test_a_prediction_runs_as_a_batch_job_the_control_plane_accepts() -> None:
    manifest = job_manifest(
        "scores", "s3://b/m.joblib", "in.csv", "out/", namespace="ml", workers=2, outputs=["predict"], id_column="id"
    )
    assert manifest["metadata"] == {"name": "scores", "namespace": "ml"}
    assert manifest["spec"] == {
        "model": "s3://b/m.joblib",
        "input": "in.csv",
        "output": "out/",
        "workers": 2,
        "outputs": ["predict"],
        "idColumn": "id",
    }  # options left unset are wharf batch's defaults
    assert isinstance(parse_manifest(manifest), BatchJob)


def test_a_job_the_control_plane_would_refuse_is_refused_here() -> None:
    with pytest.raises(SpecError, match="output"):
        job_manifest("scores", "m.joblib", "data/", "data")


def test_a_job_that_runs_has_no_outcome_yet() -> None:
    assert outcome(_job()) is None  # not started
    assert outcome(_job(("Running", "True", ""), ("Succeeded", "False", ""), rowsDone=10, rowsTotal=30)) is None


def test_a_job_that_succeeded_says_what_it_scored_and_where() -> None:
    done = _job(("Running", "False", ""), ("Succeeded", "True", ""), ("Failed", "False", ""), rowsDone=28, errors=2)
    assert outcome(done) == Scored(rows_done=28, errors=2, output="/data/out")


def test_a_job_that_failed_fails_with_its_message() -> None:
    failed = _job(("Succeeded", "False", ""), ("Failed", "True", "wharf batch exited with status 2: no such model"))
    with pytest.raises(BatchJobFailed, match="BatchJob default/scores failed: wharf batch exited .*no such model"):
        outcome(failed)
