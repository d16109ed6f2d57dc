"""Running a batch prediction on Wharf's daemon, the work behind the `run_batch` component: apply a BatchJob
(`wharf.dev/v1alpha1`, run by the daemon as `wharf batch`), watch it until it Succeeded or Failed, and say how many
rows it scored, how many bad rows it set aside, and where the predictions are.

Each run is a new job: a job of the same name, finished or running, is deleted first (a finished BatchJob never runs
again, so re-applying it would only read its old outcome). A client of the control API through Wharf's SDK, which
finds the daemon as the `wharf` CLI does when no `control_url` is given (no token is a parameter).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wharf.sdk import Wharf
from wharf.control.spec import parse_manifest
from wharf.control.spec.batchjob import API_VERSION, KIND, BatchJob
from wharf.errors import NotFound, RequestTimeout, WharfError

if TYPE_CHECKING:
    from wharf.sdk import Resource

UNSET = 0  # what a pipeline parameter says for "the command's default" (KFP parameters have no None)
SUCCEEDED, FAILED = "Succeeded", "Failed"


class BatchJobFailed(WharfError):
    """A BatchJob ended Failed; the message is its Failed condition's (the last lines of `wharf batch`'s log)."""


@dataclass(frozen=True)
class Scored:
    """What a job that succeeded did: rows predicted, bad rows set aside (in OUTPUT/errors.jsonl), and its output."""

    rows_done: int
    errors: int
    output: str


def job_manifest(
    name: str,
    model: str,
    input: str,
    output: str,
    *,
    namespace: str = "default",
    workers: int = UNSET,
    batch_size: int = UNSET,
    chunk_rows: int = UNSET,
    outputs: list[str] | None = None,
    keep: list[str] | None = None,
    id_column: str = "",
) -> dict[str, Any]:
    """A BatchJob scoring `input` with `model` (a path or URI, or `isvc/NAME`) into `output`; options left UNSET
    (or empty) are `wharf batch`'s defaults. Checked as the control plane checks it (SpecError naming the field)."""
    spec: dict[str, Any] = {"model": model, "input": input, "output": output}
    for key, value in (("workers", workers), ("batchSize", batch_size), ("chunkRows", chunk_rows)):
        if value != UNSET:
            spec[key] = value
    for key, value in (("outputs", outputs), ("keep", keep), ("idColumn", id_column)):
        if value:
            spec[key] = value
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}}
    manifest["spec"] = spec
    parse_manifest(manifest)
    return manifest


def outcome(job: Resource[Any]) -> Scored | None:
    """What a finished job did, None while it runs; BatchJobFailed, with its message, when it failed."""
    failed, succeeded = job.status.condition(FAILED), job.status.condition(SUCCEEDED)
    if failed is not None and failed.status == "True":
        raise BatchJobFailed(f"BatchJob {job.namespace}/{job.name} failed: {failed.message or 'no message'}")
    if succeeded is None or succeeded.status != "True":
        return None
    status = job.document.get("status") or {}  # the SDK's status view reads the conditions, not the job's figures
    return Scored(int(status.get("rowsDone", 0)), int(status.get("errors", 0)), job.manifest.spec.output)


def run(manifest: dict[str, Any], *, timeout_s: float = 600.0, control_url: str | None = None) -> Scored:
    """Run the BatchJob of `manifest` afresh (a job of its name is deleted first) and wait, within `timeout_s`, until
    it ends: what it did when it Succeeded, BatchJobFailed when it Failed, RequestTimeout when it has not ended."""
    metadata = manifest["metadata"]
    namespace, name = metadata.get("namespace", "default"), metadata["name"]
    label = f"BatchJob {namespace}/{name}"
    with Wharf(control_url or None) as wharf:
        try:
            wharf.delete(name, namespace, kind=BatchJob)
            wharf.wait_deleted(name, namespace, timeout_s=min(timeout_s, 60.0), kind=BatchJob)
        except NotFound:
            pass
        wharf.apply(manifest)
        with closing(wharf.watch(namespace, name, kind=BatchJob, timeout_s=timeout_s)) as events:
            for event in events:
                if event.type == "DELETED":
                    raise NotFound(f"{label} was deleted while it ran")
                if (done := outcome(event.resource)) is not None:
                    return done
        raise RequestTimeout(f"{label} had not ended after {timeout_s:g} s")
