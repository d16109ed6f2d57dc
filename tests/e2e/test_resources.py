"""`resources` enforced by a real `wharf up`: a replica over its memory limit is killed and restarted with an
OOMKilled reason in its status, a cpu limit is its CPU affinity, and GPUs are given one replica at a time (the
machine's GPUs declared with WHARF_GPUS), a replica that finds none free Pending until one is."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Daemon, ready, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MEMORY_LIMIT_MIB = 200  # a replica forked from the template holds about 20 MiB of its own, a fresh one about 60
STEP_MIB = 120  # one allocation stays within the limit, two do not


def hog(name: str, resources: str) -> str:
    """A service of the Hog test model (allocates memory on request) with `resources` (flow-style YAML)."""
    return f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    minReplicas: 1
    model:
      modelFormat: {{name: custom}}
      storageUri: wharf_test_models:Hog
      resources: {resources}
"""


def allocate(daemon: Daemon, name: str, mib: int) -> httpx.Response:
    """Ask the service's replica, through the gateway, to allocate `mib` MiB more."""
    body = {"inputs": [{"name": "mib", "shape": [1], "datatype": "INT64", "data": [mib]}]}
    with httpx.Client(base_url=daemon.gateway_url, timeout=30, headers={"host": f"{name}.default.example.com"}) as c:
        return c.post(f"/v2/models/{name}/infer", json=body)


def outputs(answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code == 200, answer.text
    return {output["name"]: output["data"][0] for output in answer.json()["outputs"]}


def replica(service: dict) -> dict:
    [state] = service["status"]["replicaStates"]
    return state


def cpus_allowed(pid: int) -> set[str]:
    """The CPU affinity of every thread of process `pid`, as /proc writes it (`0`, `0-1`, ...)."""
    return {
        line.split()[1]
        for task in os.listdir(f"/proc/{pid}/task")
        for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines()
        if line.startswith("Cpus_allowed_list:")
    }


def environ(pid: int) -> dict[str, str]:
    """The environment process `pid` was started with."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().partition("=")[::2] for pair in pairs if pair)


def test_a_replica_over_its_memory_limit_is_killed_as_oomkilled_and_restarted_and_a_cpu_limit_is_its_affinity(
    daemon: Daemon,
) -> None:
    limits = f"{{requests: {{cpu: 500m, memory: 64Mi}}, limits: {{cpu: '1', memory: {MEMORY_LIMIT_MIB}Mi}}}}"
    daemon.wharf("apply", "-f", "-", stdin=hog("hog", limits))
    first = replica(daemon.wait("hog", ready))
    [affinity] = cpus_allowed(first["pid"])  # every thread on one and the same CPU
    assert affinity.isdigit(), affinity
    answer = outputs(allocate(daemon, "hog", 8))  # within the limit
    assert answer["pid"] == first["pid"] and answer["gpus"] == "", answer  # no GPU asked for: none seen

    # The second allocation crosses the limit: answered or not, the replica is killed within half a second. (Each
    # stays within it alone: a request in flight on a killed replica is sent again to its restarted one.)
    assert outputs(allocate(daemon, "hog", STEP_MIB))["held_mib"] == 8 + STEP_MIB
    allocate(daemon, "hog", STEP_MIB)
    restarted = replica(
        daemon.wait("hog", lambda s: ready(s) and replica(s)["restarts"] >= 1 and replica(s)["pid"] != first["pid"])
    )
    assert restarted["last_error"].startswith("OOMKilled: memory "), restarted
    assert f"over the limit of {MEMORY_LIMIT_MIB} MiB (status -9)" in restarted["last_error"].splitlines()[0]
    assert restarted["last_exit"] == -9
    assert len(cpus_allowed(restarted["pid"])) == 1
    assert outputs(allocate(daemon, "hog", 8))["pid"] == restarted["pid"]  # the restarted replica serves


def test_gpus_are_given_one_replica_at_a_time_and_a_replica_waits_pending_until_one_is_free(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "home", env={"WHARF_GPUS": "0"})
    try:
        one_gpu = "{limits: {nvidia.com/gpu: 1}}"
        daemon.wharf("apply", "-f", "-", stdin=hog("first", one_gpu))
        first = replica(daemon.wait("first", ready))
        assert first["gpus"] == ["0"] and environ(first["pid"])["CUDA_VISIBLE_DEVICES"] == "0"
        assert outputs(allocate(daemon, "first", 1))["gpus"] == "0"

        daemon.wharf("apply", "-f", "-", stdin=hog("second", one_gpu))
        reason = "Pending: needs 1 nvidia.com/gpu, 0 of 1 free"
        waiting = daemon.wait("second", lambda s: bool(s["status"].get("replicaStates")) and replica(s)["pending"])
        assert replica(waiting)["pending"] == reason and replica(waiting)["pid"] == 0
        predictor = next(c for c in waiting["status"]["conditions"] if c["type"] == "PredictorReady")
        assert predictor == {"type": "PredictorReady", "status": "False", "message": reason}

        daemon.wharf("delete", "isvc", "first")
        second = replica(daemon.wait("second", ready))
        assert second["gpus"] == ["0"] and second["pending"] is None
        assert environ(second["pid"])["CUDA_VISIBLE_DEVICES"] == "0"
        assert outputs(allocate(daemon, "second", 1))["gpus"] == "0"
    finally:
        daemon.stop()
