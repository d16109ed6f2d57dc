"""`BatchJobs`: the daemon runs each BatchJob resource as a `wharf batch` process and keeps its status.

`sync`, called on each resync pass (once a second), compares the stored BatchJobs with the processes it runs:
1. a process whose BatchJob is gone (deleted, or deleted and applied again: another uid) is stopped (SIGTERM, then
   SIGKILL after a grace);
2. a BatchJob that has not finished (no Succeeded or Failed condition) and has no process gets one, its output
   appended to WHARF_HOME/logs/batchjobs/NAMESPACE/NAME.log; one that was Running when the daemon stopped starts
   again, and `wharf batch` resumes from its output's manifest (finished chunks are not scored twice);
3. a running job's progress is the last plain progress line in its log (`read_progress`); an ended job is Succeeded
   (exit status 0) or Failed, with the last lines of its log as the message.
The status is written only when it changed. A finished job stays finished: changing its spec does not run it
again (delete it and apply it anew). Costs one read of each running job's new log bytes per pass.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.control.backends.logfile import last_lines
from wharf.control.backends.process import ReplicaProcess
from wharf.control.kube.objects import timestamp
from wharf.control.spec.batchjob import KIND
from wharf.control.store import Resource, Store

log = logging.getLogger(__name__)
RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
CONDITIONS = (RUNNING, SUCCEEDED, FAILED)
STOP_GRACE_S = 5.0
_MESSAGE_LINES = 5
#: `wharf batch`'s plain progress lines: `rows 1200/5000 errors 3 ...` (the total once known).
_PROGRESS = re.compile(r"\brows[= ](?P<done>\d+)(?:/(?P<total>\d+))?.*?\berrors[= ](?P<errors>\d+)")


@dataclass(frozen=True, slots=True)
class Progress:
    rows_done: int = 0
    rows_total: int | None = None
    errors: int = 0


def read_progress(text: str, before: Progress | None = None) -> Progress | None:
    """The progress the last progress line of `text` reports, else `before`."""
    found = before
    for match in _PROGRESS.finditer(text):
        total = match["total"]
        found = Progress(int(match["done"]), int(total) if total else None, int(match["errors"]))
    return found


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


def batch_command(spec: dict[str, Any]) -> list[str]:
    """The `wharf batch` command line of a BatchJob's spec (as stored: camelCase, unset options left out)."""
    command = [sys.executable, "-m", "wharf.cli", "batch", spec["model"], spec["input"], spec["output"]]
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
            process = ReplicaProcess.spawn(batch_command(job.manifest["spec"]), env, log_path)
        except OSError as e:
            self._set(job, job_status(job.status, FAILED, None, f"could not start wharf batch: {e}"))
            return
        self._runs[(job.namespace, job.name)] = _Run(job.uid, process, log_path, offset, offset)
        log.info("batch job started", extra={"job": f"{job.namespace}/{job.name}", "pid": process.pid})
        self._set(job, job_status(job.status, RUNNING, None))

    def _observe(self, job: Resource, run: _Run) -> None:
        ended = run.process.exited()  # before reading: the lines it wrote before it ended are all there
        run.progress = read_progress(self._new_output(run), run.progress)
        if not ended:
            self._set(job, job_status(job.status, RUNNING, run.progress))
            return
        del self._runs[(job.namespace, job.name)]
        if run.process.returncode == 0:
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
