"""The worker supervisor, with processes, sleeps and signals faked so that the order of events is fixed."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from wharf.server import workers


class FakeWorker:
    """A worker process: `code` is its exit status (None while it runs); a signal ends a running one."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.code = 0


@pytest.fixture
def kept_handlers() -> Iterator[None]:
    """`supervise` installs SIGTERM/SIGINT handlers: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sigterm_during_the_restart_backoff_starts_no_new_worker(
    monkeypatch: pytest.MonkeyPatch, kept_handlers: None
) -> None:
    started: list[FakeWorker] = []

    def popen(*_: object, **__: object) -> FakeWorker:
        # Of the two workers, the first crashes at once; any other runs until it is signalled.
        started.append(FakeWorker(1 if not started else None))
        return started[-1]

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # SIGTERM arrives while the supervisor waits to restart the crashed worker
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator, misc]
        if len(sleeps) > 50:
            raise AssertionError(f"the supervisor did not exit after SIGTERM; {len(started)} workers were started")

    monkeypatch.setattr(workers, "subprocess", SimpleNamespace(Popen=popen))
    monkeypatch.setattr(workers, "time", SimpleNamespace(sleep=sleep))
    assert workers.supervise(["serve", "x"], 2) == 1
    assert sleeps[0] == 1.0  # the restart backoff, during which SIGTERM came
    assert len(started) == 2 and started[1].signals == [signal.SIGTERM]
