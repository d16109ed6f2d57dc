"""Replica cgroups, on a directory laid out as cgroup v2 lays one out (this machine need not let tests make real
ones): what is written where, and when there are none to use."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.control.backends.cgroup import CgroupUnavailable, ReplicaCgroups, cgroups_or_none
from wharf.control.backends.resources import ReplicaResources


def _base(path: Path, controllers: str) -> Path:
    path.mkdir()
    (path / "cgroup.controllers").write_text(controllers + "\n")
    return path


def test_each_replica_gets_a_cgroup_holding_it_to_its_limits(tmp_path: Path) -> None:
    cgroups = ReplicaCgroups.find(str(_base(tmp_path / "wharf", "cpuset cpu io memory pids")))
    assert cgroups.controllers == {"cpu", "memory"}
    assert (tmp_path / "wharf" / "cgroup.subtree_control").read_text() == "+cpu +memory"
    path = cgroups.create("iris-1-abc", ReplicaResources(memory=512 << 20, cpus=1.5))
    assert path == tmp_path / "wharf" / "iris-1-abc"
    written = {name: (path / name).read_text() for name in ("memory.max", "memory.swap.max", "memory.oom.group")}
    assert written == {"memory.max": str(512 << 20), "memory.swap.max": "0", "memory.oom.group": "1"}
    assert (path / "cpu.max").read_text() == "150000 100000"
    assert ReplicaCgroups.oom_kills(path) == 0
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert ReplicaCgroups.oom_kills(path) == 1


def test_without_the_cpu_controller_only_memory_is_limited(tmp_path: Path) -> None:
    cgroups = ReplicaCgroups.find(str(_base(tmp_path / "wharf", "memory")))
    path = cgroups.create("r", ReplicaResources(cpus=2))
    assert not (path / "cpu.max").exists() and not (path / "memory.max").exists()


def test_a_cgroup_without_the_memory_controller_is_no_use_and_one_made_for_nothing_is_removed(tmp_path: Path) -> None:
    with pytest.raises(CgroupUnavailable, match="memory controller is not enabled"):
        ReplicaCgroups.find(str(_base(tmp_path / "given", "cpu io")))
    with pytest.raises(CgroupUnavailable, match="cannot use"):
        ReplicaCgroups.under(tmp_path / "made", remove_unusable=True)  # made here, but it has no interface files
    assert not (tmp_path / "made").exists()
    with pytest.raises(CgroupUnavailable, match="WHARF_CGROUP=off"):
        ReplicaCgroups.find("off")
    assert cgroups_or_none("off") is None
