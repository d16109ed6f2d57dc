"""`BatchJobs`: the daemon runs each BatchJob resource as a `wharf batch` process and keeps its status.

`sync`, called on each resync pass (once a second), compares the stored BatchJobs with the processes it runs:
1. a process whose BatchJob is gone (deleted, or deleted and applied again: another uid) is stopped (SIGTERM, then
   SIGKILL after a grace);
2. a BatchJob that has not finished (no Succeeded or Failed condition) and has no process gets one, its output
   appended to WHARF_HOME/logs/batchjobs/NAMESPACE/NAME.log; one that was Running when the daemon stopped starts
   again, and `wharf batch` resumes from its output's manifest (finished chunks are not scored twice);
3. a running job's progress is what its output's manifest.json says (rows written, bad rows; read when the output
   is a local path) and the total of its last plain progress line (`read_progress`, which also reads the final
   summary); an ended job is Succeeded (exit status 0, or 3: done, with bad rows set aside in errors.jsonl) or
   Failed, with the last lines of its log as the message.
The status is written only when it changed. A finished job stays finished: changing its spec does not run it
again (delete it and apply it anew). Costs, per running job and pass, one read of its new log bytes and of its
manifest (a few bytes per chunk).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.batch import exits
from wharf.control.backends.logfile import last_lines
from wharf.control.backends.process import ReplicaProcess
from wharf.control.kube.objects import timestamp
from wharf.control.spec.batchjob import KIND, SERVICE_PREFIX
from wharf.control.store import Resource, Store

log = logging.getLogger(__name__)
RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
CONDITIONS = (RUNNING, SUCCEEDED, FAILED)
STOP_GRACE_S = 5.0
_MESSAGE_LINES = 5
#: `wharf batch`'s plain progress line (`batch: 1200/5000 rows, ...`) and final summary (`wharf batch: 5000 rows
#: predicted, 3 bad row(s), ...`)
_LINES = re.compile(
    r"batch: (?:(?P<done>\d+)/(?P<total>\d+) rows,|(?P<predicted>\d+) rows predicted, (?P<bad>\d+) bad row)"
)


@dataclass(frozen=True, slots=True)
class Progress:
    rows_done: int = 0
    rows_total: int | None = None
    errors: int = 0


def read_progress(text: str, before: Progress | None = None) -> Progress | None:
    """The progress that `before` and the progress lines and summary of `text` (in order) report."""
    found = before
    for match in _LINES.finditer(text):
        found = found or Progress()
        if match["done"] is not None:
            found = Progress(int(match["done"]), int(match["total"]), found.errors)
        else:  # the summary: every row is predicted or bad
            rows, bad = int(match["predicted"]), int(match["bad"])
            found = Progress(rows, rows + bad, bad)
    return found


def manifest_progress(data: bytes, before: Progress | None) -> Progress | None:
    """Rows written and bad rows of a `wharf batch` output's manifest.json (`done`: chunk -> {rows, bad}), with
    `before`'s total; `before` when the manifest cannot be read."""
    try:
        done = json.loads(data)["done"].values()
        rows, bad = sum(int(c["rows"]) for c in done), sum(len(c["bad"]) for c in done)
    except (ValueError, KeyError, TypeError, AttributeError):
        return before
    return Progress(rows, before.rows_total if before else None, bad)


def job_status(
    before: dict[str, Any], state: str, progress: Progress | None, message: str = "", now: float | None = None
) -> dict[str, Any]:
    """A BatchJob's status in `state` (Running, Succeeded or Failed), from the one `before`: the state's condition
    True and the others False (each condition's time is when its status last changed), the progress figures,
    startTime and, once finished, completionTime."""
    when = timestamp(time.time() if now is None else now)
    previous = {c["type"]: c for c in before.get("conditions", [])}
    conditions = []
    for kind in CONDITIONS:
        holds = "True" if kind == state else "False"
        old = previous.get(kind, {})
        condition = {"type": kind, "status": holds}
        condition["lastTransitionTime"] = old["lastTransitionTime"] if old.get("status") == holds else when
        if holds == "True" and message:
            condition["message"] = message
        conditions.append(condition)
    status: dict[str, Any] = {"conditions": conditions, "startTime": before.get("startTime", when)}
    progress = progress or Progress(before.get("rowsDone", 0), before.get("rowsTotal"), before.get("errors", 0))
    status |= {"rowsDone": progress.rows_done, "errors": progress.errors}
    if progress.rows_total is not None:
        status["rowsTotal"] = progress.rows_total
    if state != RUNNING:
        status["completionTime"] = before.get("completionTime", when)
    return status


def finished(status: dict[str, Any]) -> bool:
    return any(c.get("status") == "True" and c["type"] in (SUCCEEDED, FAILED) for c in status.get("conditions", []))


def batch_command(spec: dict[str, Any], namespace: str) -> list[str]:
    """The `wharf batch` command line of a BatchJob's spec (as stored: camelCase, unset options left out) in
    `namespace` (where its `isvc/NAME` is)."""
    model = spec["model"]
    if model.startswith(SERVICE_PREFIX):
        model = f"{SERVICE_PREFIX}{namespace}/{model.removeprefix(SERVICE_PREFIX)}"
    command = [sys.executable, "-m", "wharf.cli", "batch", model, spec["input"], spec["output"]]
    for key, option in (("workers", "--workers"), ("batchSize", "--batch-size"), ("chunkRows", "--chunk-rows")):
        if key in spec:
            command += [option, str(spec[key])]
    for key, option in (("outputs", "--output"), ("keep", "--keep")):
        if spec.get(key):
            command += [option, ",".join(spec[key])]
    if "idColumn" in spec:
        command += ["--id-column", spec["idColumn"]]
    return command


@dataclass(slots=True)
class _Run:
    uid: str
    process: ReplicaProcess
    log_path: Path
    offset: int  # of the log where this run's output starts
    read: int  # how far the log has been read for progress
    progress: Progress | None = None
    started: float = field(default_factory=time.time)


class BatchJobs:
    """The daemon's runner of BatchJobs (the module docstring)."""

    def __init__(self, store: Store, home: Path) -> None:
        self.store = store
        self.home = home
        self._runs: dict[tuple[str, str], _Run] = {}

    async def sync(self) -> None:
        jobs = {(r.namespace, r.name): r for r in self.store.list(KIND)}
        for key, run in list(self._runs.items()):
            if (job := jobs.get(key)) is None or job.uid != run.uid:
                await run.process.stop(STOP_GRACE_S)
                del self._runs[key]
                log.info("batch job stopped: deleted", extra={"job": "/".join(key), "pid": run.process.pid})
        for key, job in jobs.items():
            run = self._runs.get(key)
            if run is None:
                if not finished(job.status):
                    self._start(job)
            else:
                self._observe(job, run)

    async def stop(self) -> None:
        """Stop every running job (a later daemon starts them again, and they resume)."""
        for run in self._runs.values():
            await run.process.stop(STOP_GRACE_S)
        self._runs.clear()

    def _start(self, job: Resource) -> None:
        log_path = self.home / "logs" / "batchjobs" / job.namespace / f"{job.name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = {**os.environ, "WHARF_HOME": str(self.home)}
        try:
            process = ReplicaProcess.spawn(batch_command(job.manifest["spec"], job.namespace), env, log_path)
        except OSError as e:
            self._set(job, job_status(job.status, FAILED, None, f"could not start wharf batch: {e}"))
            return
        self._runs[(job.namespace, job.name)] = _Run(job.uid, process, log_path, offset, offset)
        log.info("batch job started", extra={"job": f"{job.namespace}/{job.name}", "pid": process.pid})
        self._set(job, job_status(job.status, RUNNING, None))

    def _observe(self, job: Resource, run: _Run) -> None:
        ended = run.process.exited()  # before reading: the lines it wrote before it ended are all there
        run.progress = _manifest(job.manifest["spec"]["output"], read_progress(self._new_output(run), run.progress))
        if not ended:
            self._set(job, job_status(job.status, RUNNING, run.progress))
            return
        del self._runs[(job.namespace, job.name)]
        if run.process.returncode in exits.SUCCEEDED:
            self._set(job, job_status(job.status, SUCCEEDED, run.progress))
        else:
            why = last_lines(run.log_path, run.offset, _MESSAGE_LINES) or "nothing logged"
            message = f"wharf batch exited with status {run.process.returncode}: {why}"
            self._set(job, job_status(job.status, FAILED, run.progress, message))
        log.info("batch job ended", extra={"job": f"{job.namespace}/{job.name}", "exit": run.process.returncode})

    @staticmethod
    def _new_output(run: _Run) -> str:
        try:
            with open(run.log_path, "rb") as f:
                f.seek(run.read)
                text = f.read()
        except OSError:
            return ""
        complete = text.rfind(b"\n") + 1  # a line still being written is read on the next pass
        run.read += complete
        return text[:complete].decode(errors="replace")

    def _set(self, job: Resource, status: dict[str, Any]) -> None:
        if status != job.status:
            self.store.set_status(KIND, job.namespace, job.name, status)


def _manifest(output: str, progress: Progress | None) -> Progress | None:
    """`progress` updated from the manifest of `output` when it is a local directory (a URI's is left unread)."""
    if "://" in output and not output.startswith("file://"):
        return progress
    try:
        data = (Path(output.removeprefix("file://")) / "manifest.json").read_bytes()
    except OSError:
        return progress
    found = manifest_progress(data, progress)
    if progress is not None and found is not None and progress.rows_done > found.rows_done:
        return progress  # the summary, read after the last save
    return found
