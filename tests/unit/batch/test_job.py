"""The manifest: what a rerun goes on from, and what it refuses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from wharf.batch import job
from wharf.batch.formats import BadRow
from wharf.batch.job import ChunkDone, JobSpec, Manifest
from wharf.errors import ConfigurationError

SPEC = JobSpec(model="m.joblib", input="in.csv", output="out", outputs=["predict_proba"], keep=["a"])


def test_finished_chunks_leave_the_pending_ones_and_count_rows_and_bad_rows() -> None:
    manifest = Manifest(SPEC.identity(), 3).finished(2, ChunkDone(5, [BadRow(11, "x")])).finished(0, ChunkDone(4, []))
    assert manifest.pending() == [1]
    assert manifest.rows == 9 and manifest.bad_rows() == [BadRow(11, "x")]
    assert Manifest.from_json(manifest.as_json()) == manifest


def test_a_rerun_of_the_same_job_resumes_and_another_job_is_refused(tmp_path: Path) -> None:
    fs, directory = LocalFileSystem(), str(tmp_path)
    assert job.begin(fs, directory, SPEC, 3).done == {}
    job.save(fs, directory, Manifest(SPEC.identity(), 3).finished(1, ChunkDone(4, [])))
    assert list(tmp_path.iterdir()) == [tmp_path / job.MANIFEST]  # written whole: no temporary file left
    resumed = job.begin(fs, directory, dataclasses.replace(SPEC, batch_size=7), 3)  # the batch size changes nothing
    assert resumed.pending() == [0, 2]
    with pytest.raises(ConfigurationError, match="another job"):
        job.begin(fs, directory, JobSpec(model="other.joblib", input="in.csv", output="out"), 3)
    with pytest.raises(ConfigurationError, match="another job"):
        job.begin(fs, directory, SPEC, 4)  # the input changed


def test_part_names_are_deterministic() -> None:
    assert job.part_name(7, "parquet") == "part-000007.parquet"
