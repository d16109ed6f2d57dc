"""What a replica runs and where it stands: plain data, for the reconciler to build and the store to persist."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from wharf.control.backends.node_selection import NodeSelection
from wharf.control.backends.resources import ReplicaResources


@dataclass(frozen=True)
class ReplicaSpec:
    """What every replica of a revision runs: `wharf serve MODEL_URI --name MODEL_NAME [--runtime R] ARGS...`
    with `env` (WHARF_* server settings and the user's variables) on top of the daemon's environment, within the
    limits of `resources`, on a node that `nodes` admits (the Ray backend's; this machine for the local one)."""

    revision: str
    model_name: str
    model_uri: str
    runtime: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    resources: ReplicaResources = ReplicaResources()
    nodes: NodeSelection = NodeSelection()

    @cached_property
    def digest(self) -> str:
        """A hash of every field, the same for equal specs whatever the order of `env`: a replica started from a
        spec with the same digest runs the same thing. (A spec without limits, or without node selection, keeps the
        digest it had before specs had `resources` and `nodes`, so that replicas started then are adopted.)"""
        optional = ("resources", "nodes")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in optional}
        for name in optional:
            if value := getattr(self, name):
                fields[name] = dataclasses.asdict(value)
        canonical = json.dumps({**fields, "env": dict(self.env)}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ReplicaState:
    """A snapshot of one replica.

    `pid`, `http_port` and `grpc_port` are 0 while there is no process or its ports are not known yet.
    `last_exit` is the exit status of the previous process (negative: killed by that signal; None when unknown,
    as for an adopted process), and `last_error` says why it ended, with the last lines of its log.
    `spec_digest` is the `ReplicaSpec.digest` of the spec its process was started with ("" in a record saved before
    digests were kept: it matches no spec). `backoff_s` is the delay it waits out before it starts again (0 when
    it is not waiting): its revision's replicas keep ending (CrashLoopBackOff). `pending` says why it has not
    started yet when it waits for the machine (`Pending: needs 1 nvidia.com/gpu, 0 of 2 free`), and `gpus` are the
    device ids it was given (its CUDA_VISIBLE_DEVICES), kept across its restarts. `progress` is what its process,
    starting, last said of its work (`downloading model 40% of 1.2 GB`), None once it serves or when it says nothing.
    """

    id: str
    revision: str
    pid: int
    http_port: int
    grpc_port: int
    ready: bool
    restarts: int
    last_exit: int | None
    started_at: float  # wall-clock seconds (time.time()) when the current process started
    last_error: str | None = None
    spec_digest: str = ""
    backoff_s: float = 0.0
    pending: str | None = None
    gpus: tuple[str, ...] = ()
    progress: str | None = None
    host: str = "127.0.0.1"  # the address its ports listen on: this machine's loopback, or its Ray node's IP
