"""Replicas in cgroups (v2) of their own, where the machine lets Wharf make them: the kernel then holds a replica to
its memory limit (memory.max, without swap, the whole replica killed at once as Kubernetes does) and its cpu limit
(cpu.max), and memory.events tells that it was killed for its memory.

Each replica gets `BASE/<replica id>`, kept across its restarts. BASE is the setting WHARF_CGROUP: a cgroup v2
directory (made if missing) whose parent enables the memory controller for it; or, with `auto`, the directory
`wharf-replicas` in the daemon's own cgroup, usable only where that cgroup may enable controllers for its children
(the root of the hierarchy, or one delegated with the controllers already enabled); or `off`. Where there is none,
the backend watches memory itself (`memory.py`).
"""

from __future__ import annotations

import logging
import math
from contextlib import suppress
from pathlib import Path

from wharf.control.backends.resources import ReplicaResources

log = logging.getLogger(__name__)

AUTO, OFF = "auto", "off"
_AUTO_NAME = "wharf-replicas"
_CPU_PERIOD_US = 100_000


class CgroupUnavailable(Exception):
    """No cgroup can hold replicas; says why."""


class ReplicaCgroups:
    """The cgroups of replicas under `base` (a cgroup v2 directory whose children have the memory controller)."""

    def __init__(self, base: Path, controllers: frozenset[str]) -> None:
        self.base = base
        self.controllers = controllers

    @classmethod
    def find(cls, setting: str) -> ReplicaCgroups:
        """The replicas' cgroups that `setting` (a path, `auto` or `off`) names; raises CgroupUnavailable."""
        if setting == OFF:
            raise CgroupUnavailable("WHARF_CGROUP=off")
        if setting == AUTO:
            own = _own_cgroup()
            if own is None:
                raise CgroupUnavailable("this machine has no cgroup v2 hierarchy")
            return cls.under(own / _AUTO_NAME, remove_unusable=True)
        return cls.under(Path(setting), remove_unusable=False)

    @classmethod
    def under(cls, base: Path, remove_unusable: bool) -> ReplicaCgroups:
        """Make `base` (if missing) and enable the memory and cpu controllers for its children; a `base` made here
        that cannot hold replicas is removed again with `remove_unusable`."""
        made = False
        try:
            if not base.is_dir():
                base.mkdir()
                made = True
            controllers = frozenset((base / "cgroup.controllers").read_text().split())
            if "memory" not in controllers:
                raise CgroupUnavailable(f"the memory controller is not enabled for {base}")
            wanted = controllers & {"memory", "cpu"}
            (base / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in sorted(wanted)))
            return cls(base, frozenset(wanted))
        except OSError as e:
            unusable: Exception = CgroupUnavailable(f"cannot use {base}: {e.strerror or e}")
        except CgroupUnavailable as e:
            unusable = e
        if made and remove_unusable:
            with suppress(OSError):
                base.rmdir()
        raise unusable

    def create(self, name: str, resources: ReplicaResources) -> Path:
        """The cgroup `name` with the limits of `resources` (made, or updated if it exists); raises OSError."""
        path = self.base / name
        path.mkdir(exist_ok=True)
        if resources.memory:
            _write(path / "memory.max", str(resources.memory))
            _write(path / "memory.swap.max", "0", optional=True)
            _write(path / "memory.oom.group", "1", optional=True)
        if resources.cpus and "cpu" in self.controllers:
            _write(path / "cpu.max", f"{math.ceil(resources.cpus * _CPU_PERIOD_US)} {_CPU_PERIOD_US}")
        return path

    @staticmethod
    def oom_kills(path: Path) -> int:
        """How many processes of the cgroup the kernel has killed for its memory limit."""
        with suppress(OSError):
            for line in (path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    @staticmethod
    def remove(path: Path) -> None:
        """Remove the cgroup of a replica that has stopped (one that still holds a process stays)."""
        try:
            path.rmdir()
        except OSError as e:
            log.debug("replica cgroup not removed", extra={"cgroup": str(path), "error": str(e)})


def _write(path: Path, value: str, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except FileNotFoundError:
        if not optional:
            raise


def _own_cgroup() -> Path | None:
    """The daemon's cgroup v2 directory, where the unified hierarchy is mounted; None without one."""
    try:
        membership = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in membership if line.startswith("0::")), None)
    # mountinfo: id parent major:minor root mount-point options ... - fstype source super-options
    mount = next((line.split()[4] for line in mounts if line.partition(" - ")[2].startswith("cgroup2 ")), None)
    if relative is None or mount is None:
        return None
    return Path(mount) / relative.lstrip("/")


def cgroups_or_none(setting: str) -> ReplicaCgroups | None:
    """`ReplicaCgroups.find(setting)`, or None (logged once, with the reason) where the watchdog must do."""
    try:
        cgroups = ReplicaCgroups.find(setting)
    except CgroupUnavailable as e:
        log.info("replica limits without cgroups: the backend watches memory itself", extra={"reason": str(e)})
        return None
    log.info("replica limits by cgroup v2", extra={"cgroup": str(cgroups.base)})
    return cgroups
