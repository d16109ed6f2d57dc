"""Standby replicas of the local backend: a revision scaled to zero keeps one, its model loaded, which becomes its
next replica; none for a replica with limits; dropped when the revision is removed or its spec changes; those of a
daemon that crashed are killed by the next one."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from tests.integration.conftest import ENV, Backends, alive, all_ready, spec_of, until
from wharf.control.backends import LocalBackend
from wharf.control.backends.resources import ReplicaResources

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ECHO = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.5]}]}


async def _standby(backend: LocalBackend, revision: str) -> int:
    """The pid of the revision's standby, once it stands by."""
    assert backend.standbys is not None
    pid, private, resident = await until(lambda: backend.standbys.memory().get(revision), timeout=60)
    assert 0 < private < resident
    return pid


async def test_a_revision_at_zero_keeps_a_standby_that_becomes_its_next_replica(backends: Backends) -> None:
    backend = backends()
    echo = spec_of("echo-1", "wharf_test_models:Echo", "echo")
    await backend.scale(echo, 0)
    standby = await _standby(backend, "echo-1")
    assert backend.replicas() == []

    await backend.scale(echo, 1)
    [replica] = await until(all_ready(backend, "echo-1", 1))
    assert replica.pid == standby and backend.standbys.memory() == {}  # type: ignore[union-attr]
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await client.post(f"http://127.0.0.1:{replica.http_port}/v2/models/echo/infer", json=ECHO)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [1.5]
    replica_log = backend.log_path("echo-1", replica.id).read_text()
    assert f'"replica":"{replica.id}"' in replica_log and '"serving"' in replica_log  # its identity, its log

    await backend.scale(echo, 0)
    second = await _standby(backend, "echo-1")
    assert second != standby
    await until(lambda: not alive(replica.pid))
    await backend.remove("echo-1")
    await until(lambda: not alive(second))
    assert backend.standbys.memory() == {}  # type: ignore[union-attr]


async def test_no_standby_for_limits_and_none_used_for_another_spec(backends: Backends) -> None:
    backend = backends()
    limited = dataclasses.replace(
        spec_of("limited-1", "wharf_test_models:Echo", "echo"), resources=ReplicaResources(memory=1 << 30)
    )
    await backend.scale(limited, 0)  # its replicas' memory is charged to their own cgroup from their start
    assert backend.standbys is not None and backend.standbys._standbys == {}

    echo = spec_of("echo-2", "wharf_test_models:Echo", "echo")
    await backend.scale(echo, 0)
    standby = await _standby(backend, "echo-2")
    changed = dataclasses.replace(echo, env={**ENV, "ANOTHER_VARIABLE": "1"})
    await backend.scale(changed, 1)
    [replica] = await until(all_ready(backend, "echo-2", 1))
    assert replica.pid != standby
    await until(lambda: not alive(standby))


async def test_the_standbys_of_a_daemon_that_crashed_are_killed_by_the_next_one(backends: Backends) -> None:
    crashed = backends()  # never closed before the next one starts, as after a kill -9
    await crashed.scale(spec_of("echo-3", "wharf_test_models:Echo", "echo"), 0)
    orphan = await _standby(crashed, "echo-3")
    backends()  # the next daemon's backend, on the same home
    await until(lambda: not alive(orphan))
