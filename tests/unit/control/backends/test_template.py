"""Which replicas may be forked from the template, and how a forked replica's end is learned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from wharf.control.backends.process import ReplicaProcess
from wharf.control.backends.template import ReplicaTemplate, _TemplateChild, _kill_unwanted

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture
def template(tmp_path: Path) -> ReplicaTemplate:
    with mock.patch.dict(os.environ, {"OMP_NUM_THREADS": "2", "PYTHONPATH": "/a"}, clear=True):
        return ReplicaTemplate(("numpy",), tmp_path / "template.log", 30.0, 60.0)


@pytest.mark.parametrize(
    ("env", "forked"),
    [
        ({**NO_GPU, "OMP_NUM_THREADS": "2", "PYTHONPATH": "/a", "WHARF_DRAIN_TIMEOUT_S": "5", "WHO": "x"}, True),
        ({**NO_GPU, "OMP_NUM_THREADS": "2", "PYTHONPATH": "/b"}, True),  # the child puts it on sys.path
        ({"OMP_NUM_THREADS": "2"}, False),  # every replica sets CUDA_VISIBLE_DEVICES, as the template has it
        ({"CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "2"}, False),  # a replica given a GPU starts fresh
        ({"OMP_NUM_THREADS": "1"}, False),
        ({}, False),  # unset where the template has it
        ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1"}, False),
        ({"OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "0"}, False),
        ({"OMP_NUM_THREADS": "2", "LD_PRELOAD": "/lib/x.so"}, False),
        ({"OMP_NUM_THREADS": "2", "GRPC_VERBOSITY": "debug"}, False),
    ],
)
def test_only_an_environment_read_after_import_may_differ(
    template: ReplicaTemplate, env: dict[str, str], forked: bool
) -> None:
    assert template.can_fork(env) is forked


def _zygote(running: bool) -> Any:
    return SimpleNamespace(statuses={}, reader=mock.Mock(done=lambda: not running))


def test_a_forked_replica_ends_when_the_template_reports_it_and_then_is_watched_by_pid() -> None:
    zygote = _zygote(running=True)
    child = _TemplateChild(os.getpid(), zygote)
    assert not child.exited()
    zygote.statuses[os.getpid()] = -9
    assert child.exited() and child.returncode == -9 and zygote.statuses == {}

    orphan = _TemplateChild(os.getpid(), _zygote(running=False))
    assert not orphan.exited()  # the template is gone, and this pid is alive
    gone = _TemplateChild(2**22 + 1, _zygote(running=False))  # above any pid_max
    assert gone.exited() and gone.returncode is None


@pytest.mark.anyio
async def test_a_replica_forked_for_an_abandoned_request_is_killed_even_before_it_leads_its_session() -> None:
    """The template answers with the pid right after the fork: a caller cancelled meanwhile must kill that process
    even when it has not yet made its own session (its pid names no process group then)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in this test's process group
    try:
        exchange: asyncio.Future[ReplicaProcess] = asyncio.get_running_loop().create_future()
        exchange.set_result(ReplicaProcess(child.pid))
        _kill_unwanted(exchange)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait(10)
