"""A batch job's progress: a rich bar with rows/s and ETA on a terminal, a plain line every few seconds otherwise,
and the final summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

PLAIN_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Summary:
    rows: int
    bad_rows: int
    failed_chunks: list[int]
    seconds: float

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        failed = f", {len(self.failed_chunks)} chunk(s) failed: {self.failed_chunks}" if self.failed_chunks else ""
        return (
            f"{self.rows} rows predicted, {self.bad_rows} bad row(s), in {self.seconds:.1f} s "
            f"({rate:,.0f} rows/s){failed}"
        )


class Progress:
    """Rows done out of `total`; `advance` is called by the job as each chunk ends."""

    def __init__(
        self, total: int, stream: TextIO, already: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total, self.done, self.stream, self.clock = total, already, stream, clock
        self.started = self._last = clock()
        self._start_rows = already
        self._bar = None
        if stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(
                TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} rows/s"),
                TextColumn("ETA"), TimeRemainingColumn(), console=Console(file=stream),
            )  # fmt: skip
            self._task = self._bar.add_task("batch", total=total, completed=already, rate="-")
            self._bar.start()

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return (self.done - self._start_rows) / elapsed if elapsed > 0 else 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate():,.0f}")
            return
        now = self.clock()
        if now - self._last >= PLAIN_EVERY_S:
            self._last = now
            rate = self.rate()
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(
                f"batch: {self.done}/{self.total} rows, {rate:,.0f} rows/s, ETA {eta:.0f} s",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
