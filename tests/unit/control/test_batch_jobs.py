"""The BatchJob resource: its spec's validation, the `wharf batch` command it runs, and its status from the job's
progress lines and exit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from wharf.control.batch_jobs import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    Progress,
    batch_command,
    finished,
    job_status,
    manifest_progress,
    read_progress,
)
from wharf.control.policy import ManifestPolicy
from wharf.control.spec import SpecError, parse_manifest


def batch_job(**spec: Any) -> dict[str, Any]:
    given = {"model": "/models/iris", "input": "/data/in.csv", "output": "/data/out"} | spec
    return {"apiVersion": "wharf.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "score"}, "spec": given}


def problems(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as raised:
        parse_manifest(document)
    return dict(raised.value.problems)


def test_a_batch_job_keeps_what_it_was_given_and_leaves_unset_options_out() -> None:
    job = parse_manifest(batch_job(workers=2, batchSize=512, outputs=["predict_proba"], keep=["id", "x"]))
    assert job.kind == "BatchJob" and job.name == "score" and job.namespace == "default"
    assert job.to_manifest()["spec"] == {
        "model": "/models/iris",
        "input": "/data/in.csv",
        "output": "/data/out",
        "workers": 2,
        "batchSize": 512,
        "outputs": ["predict_proba"],
        "keep": ["id", "x"],
    }


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"workers": 0}, "spec.workers", "must be >= 1"),
        ({"batchSize": "many"}, "spec.batchSize", "must be an integer"),
        ({"model": ""}, "spec.model", "at least 1 character"),
        ({"model": "isvc/Not_A_Name"}, "spec.model", "isvc/NAME: the name must be lower-case"),
        ({"output": "/data/in.csv"}, "spec.output", "must not be the input"),
        ({"keep": ["a,b"]}, "spec.keep[0]", "without ','"),
        ({"replicas": 3}, "spec.replicas", "unknown field"),
    ],
)
def test_a_bad_batch_job_is_refused_naming_the_field(spec: dict[str, Any], path: str, reason: str) -> None:
    found = problems(batch_job(**spec))
    assert path in found and reason in found[path], found


def test_a_batch_job_needs_wharfs_api_version() -> None:
    document = batch_job() | {"apiVersion": "serving.kserve.io/v1beta1"}
    assert "must be wharf.dev/v1alpha1" in problems(document)["apiVersion"]


def test_the_command_passes_each_option_given_and_no_other() -> None:
    spec = parse_manifest(batch_job(chunkRows=1000, keep=["a", "b"], idColumn="key")).to_manifest()["spec"]
    assert batch_command(spec, "team") == [
        *(sys.executable, "-m", "wharf.cli", "batch", "/models/iris", "/data/in.csv", "/data/out"),
        *("--chunk-rows", "1000", "--keep", "a,b", "--id-column", "key"),
    ]
    service = parse_manifest(batch_job(model="isvc/iris", outputs=["predict_proba"])).to_manifest()["spec"]
    assert batch_command(service, "team")[4:] == [
        "isvc/team/iris",
        "/data/in.csv",
        "/data/out",
        "--output",
        "predict_proba",
    ]


def test_progress_is_the_last_progress_line_and_stays_when_none_is_new() -> None:
    lines = "starting\nbatch: 100/1000 rows, 50 rows/s, ETA 18 s\nbatch: 300/1000 rows, 60 rows/s, ETA 12 s\nlog\n"
    assert read_progress(lines, Progress(0, None, 2)) == Progress(300, 1000, 2)
    summary = "wharf batch: 997 rows predicted, 3 bad row(s), in 2.0 s (498 rows/s)\n"
    assert read_progress(summary) == Progress(997, 1000, 3)
    assert read_progress("nothing here\n", Progress(5, 10, 0)) == Progress(5, 10, 0)
    assert read_progress("") is None


def test_the_manifest_counts_rows_written_and_bad_rows() -> None:
    manifest = b'{"job": {}, "chunks": 3, "done": {"0": {"rows": 10, "bad": [[3, "x"]]}, "2": {"rows": 4, "bad": []}}}'
    assert manifest_progress(manifest, Progress(0, 20, 0)) == Progress(14, 20, 1)
    assert manifest_progress(b"{half", Progress(1, 20, 0)) == Progress(1, 20, 0)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_job_runs_then_succeeds_keeping_its_start_and_transition_times() -> None:
    running = job_status({}, RUNNING, None, now=0)
    assert condition(running, RUNNING)["status"] == "True" and not finished(running)
    assert running["rowsDone"] == 0 and "rowsTotal" not in running and "completionTime" not in running
    later = job_status(running, RUNNING, Progress(50, 100, 1), now=60)
    assert later["startTime"] == running["startTime"] == "1970-01-01T00:00:00Z"
    assert condition(later, RUNNING) == condition(running, RUNNING)  # no transition: same time
    assert (later["rowsDone"], later["rowsTotal"], later["errors"]) == (50, 100, 1)
    done = job_status(later, SUCCEEDED, None, now=120)  # no new line: the last progress stays
    assert finished(done) and done["rowsDone"] == 50 and done["completionTime"] == "1970-01-01T00:02:00Z"
    assert condition(done, RUNNING)["status"] == "False" and condition(done, SUCCEEDED)["status"] == "True"


def test_a_failed_job_says_why() -> None:
    failed = job_status(job_status({}, RUNNING, None), FAILED, None, "wharf batch exited with status 1: no model")
    assert finished(failed)
    assert condition(failed, FAILED) | {"lastTransitionTime": ""} == {
        "type": FAILED,
        "status": "True",
        "lastTransitionTime": "",
        "message": "wharf batch exited with status 1: no model",
    }


def test_the_policy_holds_a_batch_jobs_model_to_a_replicas_rules(tmp_path: Path) -> None:
    policy = ManifestPolicy(
        home=tmp_path / ".wharf", storage_roots=(tmp_path,), pickle_schemes=(), custom_classes=False
    )

    def refused(model: str) -> dict[str, str]:
        return dict(policy.problems(parse_manifest(batch_job(model=model))))

    assert "outside the directories models load from" in refused("/elsewhere/model.onnx")["spec.model"]
    assert "loading a pickle runs the code it names" in refused(str(tmp_path / "model.joblib"))["spec.model"]
    assert "loading a pickle" in refused(str(tmp_path / "model"))["spec.model"]  # a directory may hold one
    assert refused(str(tmp_path / "model.onnx")) == {}
    assert "runs none from manifests" in refused("my_models:Scorer")["spec.model"]
    assert refused("isvc/iris") == {}  # the service's own manifest was held to them
