"""Memory figures of models: byte quantities as settings and manifests write them, the process's resident memory,
and the size of the objects a loaded model holds.

`process_rss` reads /proc/self/statm (Linux; about 5 µs), None elsewhere. `object_bytes` walks the objects a
model refers to (as the garbage collector sees them), adding each one's `sys.getsizeof` once: a numpy array counts
its data where it owns it, and what is shared by every model (modules, classes, functions) is not followed. It
costs about 1 µs an object (a small scikit-learn model: well under a millisecond) and runs only when a model loads.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import types
from typing import Any

import numpy as np

_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)([KMGTPE]i|[kMGTPE])?")
_FACTORS = {
    None: 1,
    **{p: 1024 ** (i + 1) for i, p in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{p: 1000 ** (i + 1) for i, p in enumerate(("k", "M", "G", "T", "P", "E"))},
}
#: objects every model shares, whose cost is the process's and not a model's
_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.CodeType)
#: growth of the process's resident memory below this is the allocator's granularity (CPython's arenas are 1 MiB,
#: its pools 16 KiB, pages 4 KiB) or other threads' transient allocations, not evidence of a model's cost
RSS_NOISE_BYTES = 2**20
_MAX_OBJECTS = 2_000_000  # a walk stops here (a model reaching the whole heap); the figure is then a floor


def parse_bytes(value: int | str, field: str) -> int:
    """Bytes from an integer or a Kubernetes quantity ("512Mi", "1G", "1e6" is refused); `field` names it in errors."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected bytes or a quantity such as 512Mi, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{field}: {value} is negative")
        return value
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{field}: {value!r} is not bytes or a quantity such as 512Mi or 2G")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def process_rss() -> int | None:
    """The process's resident memory in bytes, or None where /proc is not there to read it."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def object_bytes(root: Any) -> int:
    """The bytes of `root` and of every object it reaches but shared ones (see the module docstring)."""
    seen: set[int] = set()
    pending = [root]
    total = 0
    while pending and len(seen) < _MAX_OBJECTS:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 0)
        if isinstance(obj, np.ndarray):
            if obj.base is not None:  # a view: its data belongs to its base
                pending.append(obj.base)
            continue
        pending.extend(gc.get_referents(obj))
    return total
