"""A component's `resources` as a replica's limits, and how the machine's CPUs and GPUs are shared among replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.control.backends.resources import CpuSpread, GpuPool, ReplicaResources, machine_gpus


@pytest.mark.parametrize(
    ("resources", "limits"),
    [
        (None, ReplicaResources()),
        ({"requests": {"cpu": "2", "memory": "1Gi"}}, ReplicaResources()),  # requests only inform
        ({"limits": {"cpu": "500m", "memory": "512Mi"}}, ReplicaResources(memory=512 << 20, cpus=0.5)),
        ({"limits": {"memory": "1G", "cpu": "0"}}, ReplicaResources(memory=10**9)),  # a zero limit is none
        ({"requests": {"nvidia.com/gpu": "1"}}, ReplicaResources(gpus=1)),
        ({"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}, ReplicaResources(gpus=2)),
    ],
)
def test_limits_from_kubernetes_resources(resources: dict | None, limits: ReplicaResources) -> None:
    assert ReplicaResources.from_kubernetes(resources) == limits


def test_a_cpu_limit_is_rounded_up_to_whole_cores() -> None:
    assert [ReplicaResources(cpus=c).cores for c in (None, 0.1, 1, 1.5)] == [0, 1, 1, 2]
    assert not ReplicaResources() and ReplicaResources(gpus=1)


def test_cores_go_to_the_least_used_first_and_come_back() -> None:
    spread = CpuSpread([3, 1, 0, 2])
    first, second = spread.take(1), spread.take(2)
    assert first == (0,) and second == (1, 2)
    assert spread.take(3) == (0, 1, 3)  # 3 is free, then the lowest of those held once
    spread.release(second)
    assert spread.take(1) == (2,)
    assert spread.take(9) == (0, 1, 2, 3)  # no more cores than the machine has
    spread.hold([5])  # not this machine's: ignored


def test_gpus_go_to_one_replica_at_a_time_and_a_shortage_says_why() -> None:
    pool = GpuPool(["0", "1"], "WHARF_GPUS='0,1'")
    assert pool.take(1) == ("0",) and pool.take(2) is None
    assert pool.shortage(2) == "Pending: needs 2 nvidia.com/gpu, 1 of 2 free"
    assert pool.take(1) == ("1",) and pool.shortage(1) == "Pending: needs 1 nvidia.com/gpu, 0 of 2 free"
    pool.release(["0"])
    assert pool.take(1) == ("0",)
    assert pool.shortage(3) == (
        "Pending: needs 3 nvidia.com/gpu, 0 of 2 free (WHARF_GPUS='0,1'; WHARF_GPUS lists the device ids replicas"
        " may be given)"
    )
    adopted = GpuPool(["0", "1"], "")
    adopted.hold(["1", "7"])
    assert adopted.take(2) is None and adopted.take(1) == ("0",)


def test_the_gpus_come_from_the_setting_else_the_daemons_cuda_visible_devices_else_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert machine_gpus("0, 2,,2", {"CUDA_VISIBLE_DEVICES": "5"}).ids == ("0", "2")
    assert machine_gpus("", {}).ids == ()
    assert machine_gpus(None, {"CUDA_VISIBLE_DEVICES": "GPU-abc,1,-1,3"}).ids == ("GPU-abc", "1")  # as CUDA reads it
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    listed = machine_gpus(None, {})
    assert listed.ids == ("0", "1") and listed.source == "nvidia-smi lists 2"
    fake.write_text("#!/bin/sh\nexit 9\n")
    assert machine_gpus(None, {}).ids == ()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert machine_gpus(None, {}).source == "no GPUs found: nvidia-smi is not installed"
