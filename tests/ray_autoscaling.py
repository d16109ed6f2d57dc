"""A one-node Ray cluster that autoscales, for the Ray backend's integration tests: a head of one CPU whose autoscaler
(Ray's fake multi-node provider, `fake_multinode`: nodes are processes on this machine) may add one node of two CPUs
when an actor asks for more than the head has.

The head is a `ray start --head` (the fake provider runs only in a cluster started so) with a temporary directory of
its own; every process of the cluster (the nodes the autoscaler adds included) names that directory, and is
stopped by its pid at the end. Ray 2.60's `ray start` asks drivers for a token unless RAY_AUTH_MODE is `disabled`,
as here. Bound to 127.0.0.1 as `tests/ray_cluster.py`'s cluster is (`LOOPBACK`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ray_cluster import LOOPBACK

RAY = Path(sys.executable).with_name("ray")
_START_TIMEOUT_S = 90
_STOP_TIMEOUT_S = 3


def _config(gcs: str) -> dict[str, Any]:
    """The autoscaler's cluster config: the fake provider, a one-CPU head, at most one two-CPU worker."""
    empty = (
        "initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
        "head_start_ray_commands", "worker_start_ray_commands", "cluster_synced_files", "rsync_exclude", "rsync_filter",
    )  # fmt: skip
    return {
        "cluster_name": "wharf-autoscaling",
        "max_workers": 1,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs,
            "disable_launch_config_check": True,
            "disable_node_updaters": True,  # else an updater tries SSH, fails, and the new node is terminated
        },
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "two-cpus": {"resources": {"CPU": 2}, "node_config": {}, "min_workers": 0, "max_workers": 1},
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
        **dict.fromkeys(empty, []),
    }


def _pids(directory: Path) -> list[int]:
    """The processes whose command line names `directory` (the cluster's, and only its: the directory is new)."""
    mark, found = str(directory).encode(), []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(entry.name) != os.getpid() and mark in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # ended meanwhile
            pass
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop(directory: Path) -> None:
    """SIGTERM every process of the cluster, SIGKILL those left after `_STOP_TIMEOUT_S`."""
    _signal(_pids(directory), signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while (left := _pids(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal(left, signal.SIGKILL)


@pytest.fixture(scope="module")
def autoscaling_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The head's GCS address (for `ray.init` and the Ray backend's `address`); stopped after the module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gcs = f"127.0.0.1:{port}"
    config = tmp_path_factory.mktemp("ray-autoscaling") / "cluster.json"
    config.write_text(json.dumps(_config(gcs)))
    directory = Path(tempfile.mkdtemp(prefix="wharf-ray-"))  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, **LOOPBACK, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    env["RAY_AUTH_MODE"] = "disabled"
    command = [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1"]
    command += [f"--autoscaling-config={config}", f"--temp-dir={directory}", "--include-dashboard=false"]
    command += ["--object-store-memory=83886080"]
    saved = {key: os.environ.get(key) for key in LOOPBACK}
    os.environ.update(LOOPBACK)  # before this process imports Ray, which reads it then
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_START_TIMEOUT_S)
        assert started.returncode == 0, started.stdout + started.stderr
        yield gcs
    finally:
        import ray

        ray.shutdown()
        _stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
