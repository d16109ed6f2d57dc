"""A crash-looping revision on the local backend with real `wharf serve` processes: its restarts back off per
revision (shown in each replica's state), a replica added meanwhile waits its turn, and its requests may fail at
once since it never got ready."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import FAST, Backends, spec_of, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_restarts_back_off_per_revision_and_new_replicas_wait_their_turn(
    backends: Backends,
    tmp_path: Path,
) -> None:
    started_pids: set[int] = set()

    def changed() -> None:
        started_pids.update(state.pid for state in backend.replicas() if state.pid)

    settings = FAST.model_copy(update={"backoff_initial_s": 3.0, "backoff_max_s": 10.0, "failing_after": 2})
    backend = backends(settings=settings, on_change=changed)
    missing = spec_of("bad-1", str(tmp_path / "missing.joblib"), "missing")
    await backend.scale(missing, 1)
    # Restarted at once after its first failure; after the second it waits 3 s.
    [first] = await until(lambda: [s for s in backend.replicas("bad-1") if s.backoff_s == 3.0], timeout=30)
    assert first.restarts == 1 and first.pid == 0 and len(started_pids) == 2
    assert backend.failing("bad-1") is not None and "does not exist" in (backend.failing("bad-1") or "")

    started = time.monotonic()
    await backend.scale(missing, 2)  # scaling up does not get round the delay
    [added] = await until(lambda: [s for s in backend.replicas("bad-1") if s.id != first.id and s.backoff_s])
    assert added.pid == 0 and 0 < added.backoff_s <= 3.0
    await until(lambda: len(started_pids) >= 4, timeout=20)  # both start again once the 3 s are over
    assert time.monotonic() - started > 2.0
    await until(lambda: any(s.backoff_s > 3.0 for s in backend.replicas("bad-1")), timeout=20)  # and doubled
