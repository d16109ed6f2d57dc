"""What a replica may use of the machine, from a component's Kubernetes `resources`, and how the local backend
shares the machine's CPUs and GPUs among replicas.

As in Kubernetes, limits bind and requests (but for GPUs) only inform: `limits.memory` is the most memory a
replica's processes may hold (a cgroup's memory.max, or the watchdog in `memory.py`), `limits.cpu` the cores it
may run on (an affinity of ceil(cpu) cores, and a cgroup's cpu.max quota where there is one), `nvidia.com/gpu`
(limits, else requests) the whole GPUs it is given alone. A zero memory or cpu limit is no limit.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wharf.control.spec.common import GPU, parse_quantity

#: The variable that tells CUDA (and every framework above it) which GPUs a process sees.
VISIBLE_GPUS = "CUDA_VISIBLE_DEVICES"
_NVIDIA_SMI_TIMEOUT_S = 10.0
MIB = 1 << 20


@dataclass(frozen=True)
class ReplicaResources:
    """The limits of one replica: `memory` in bytes and `cpus` in cores (None: no limit), `gpus` whole GPUs."""

    memory: int | None = None
    cpus: float | None = None
    gpus: int = 0

    @classmethod
    def from_kubernetes(cls, resources: Mapping[str, Mapping[str, str]] | None) -> ReplicaResources:
        """From a validated `resources` mapping (`requests` and `limits` of Kubernetes quantities)."""
        limits = (resources or {}).get("limits") or {}
        requests = (resources or {}).get("requests") or {}
        memory = int(parse_quantity(limits["memory"])) if "memory" in limits else 0
        cpus = parse_quantity(limits["cpu"]) if "cpu" in limits else 0.0
        gpus = limits.get(GPU) or requests.get(GPU) or "0"
        return cls(memory or None, cpus or None, int(parse_quantity(gpus)))

    @property
    def cores(self) -> int:
        """How many cores the replica's affinity allows: its cpu limit rounded up (0: any)."""
        return math.ceil(self.cpus) if self.cpus else 0

    def __bool__(self) -> bool:
        return self != ReplicaResources()


class CpuSpread:
    """The machine's CPUs as replicas with a cpu limit get them: each takes the cores fewest other replicas hold
    (the lowest-numbered among equals), so that limited replicas spread over the machine."""

    def __init__(self, cpus: Iterable[int]) -> None:
        self.cpus = sorted(cpus)
        self._holders = Counter(dict.fromkeys(self.cpus, 0))

    def take(self, count: int) -> tuple[int, ...]:
        """`count` cores (all of them when the machine has no more)."""
        chosen = sorted(self.cpus, key=lambda cpu: (self._holders[cpu], cpu))[:count]
        self._holders.update(chosen)
        return tuple(sorted(chosen))

    def hold(self, cpus: Iterable[int]) -> None:
        """Count `cpus` as taken (by a replica adopted from an earlier daemon)."""
        self._holders.update(cpu for cpu in cpus if cpu in self._holders)

    def release(self, cpus: Iterable[int]) -> None:
        self._holders.subtract(cpu for cpu in cpus if cpu in self._holders)


class GpuPool:
    """The GPUs replicas may be given (device ids as CUDA_VISIBLE_DEVICES takes them), each to one replica at a
    time; `source` says where the list came from."""

    def __init__(self, ids: Sequence[str], source: str) -> None:
        self.ids = tuple(ids)
        self.source = source
        self._taken: set[str] = set()

    def take(self, count: int) -> tuple[str, ...] | None:
        """`count` free GPUs, or None when fewer are free."""
        free = [gpu for gpu in self.ids if gpu not in self._taken]
        if len(free) < count:
            return None
        self._taken.update(free[:count])
        return tuple(free[:count])

    def hold(self, ids: Iterable[str]) -> None:
        """Count `ids` as taken (by a replica adopted from an earlier daemon)."""
        self._taken.update(gpu for gpu in ids if gpu in self.ids)

    def release(self, ids: Iterable[str]) -> None:
        self._taken.difference_update(ids)

    def shortage(self, count: int) -> str:
        """Why a replica that needs `count` GPUs cannot start now."""
        free = len(self.ids) - len(self._taken)
        reason = f"Pending: needs {count} {GPU}, {free} of {len(self.ids)} free"
        if count > len(self.ids):
            reason += f" ({self.source}; WHARF_GPUS lists the device ids replicas may be given)"
        return reason


def machine_gpus(setting: str | None, environ: Mapping[str, str] = os.environ) -> GpuPool:
    """The GPUs of this machine: `setting` (WHARF_GPUS, comma-separated device ids) when given, else the daemon's
    own CUDA_VISIBLE_DEVICES, else those `nvidia-smi -L` lists (by index), else none. Runs nvidia-smi (up to 10 s):
    call it off the event loop."""
    if setting is not None:
        return GpuPool(_device_ids(setting), f"WHARF_GPUS={setting!r}")
    if (visible := environ.get(VISIBLE_GPUS)) is not None:
        return GpuPool(_device_ids(visible), f"the daemon's {VISIBLE_GPUS}={visible!r}")
    listed = _nvidia_smi()
    if listed is None:
        return GpuPool((), "no GPUs found: nvidia-smi is not installed")
    return GpuPool([str(i) for i in range(listed)], f"nvidia-smi lists {listed}")


def _device_ids(text: str) -> list[str]:
    """Ids as CUDA reads them: comma-separated, up to the first invalid (negative) one."""
    ids: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.startswith("-"):
            break
        if part and part not in ids:
            ids.append(part)
    return ids


def _nvidia_smi() -> int | None:
    """How many GPUs `nvidia-smi -L` lists (0 when it fails), None when it is not installed."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return None
    try:
        listed = subprocess.run(
            [command, "-L"], capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
