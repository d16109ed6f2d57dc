"""The Ray backend against the local one on this machine: the time to place a replica until it is ready, and the
gateway's requests/s to a replica on a Ray worker node against a local replica.

A Ray cluster of three nodes (one CPU each, loopback addresses) is started here, as tests/ray_cluster.py does.
Placement: `scale(spec, 1)` of the Echo test model until the replica is ready, `--rounds` times per backend (the
replica removed between rounds); the local backend with its defaults (forked from its warm template). Throughput:
a real `wharf up` per backend serving one WhoAmI replica, `wrk` for `--seconds` at `--connections` keep-alive
connections through the gateway (V2 JSON infer, 1 row). Every node is this machine: "another node" is another
raylet's process, reached over loopback, not a network.

Usage (from the repository root): .venv/bin/python bench/ray_backend.py [--rounds 3] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests/integration/models"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
sys.path[:0] = [str(ROOT), str(MODELS)]

from tests.e2e.conftest import manifest, start_daemon  # noqa: E402
from wharf.control.backends import LocalBackend, ReplicaSpec  # noqa: E402
from wharf.control.backends.base import Backend  # noqa: E402
from wharf.control.backends.ray import RayBackend, RayBackendSettings  # noqa: E402

SPEC = ReplicaSpec("echo-1", "echo", "wharf_test_models:Echo", None, {"PYTHONPATH": str(MODELS)})
BODY = '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}'


async def placement_s(backend: Backend, rounds: int) -> list[float]:
    """Seconds from `scale(SPEC, 1)` to a ready replica, each round on a fresh replica."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await backend.scale(SPEC, 1)
        while not any(s.ready for s in backend.replicas()):
            await asyncio.sleep(0.02)
        times.append(time.perf_counter() - started)
        await backend.remove(SPEC.revision)
        await asyncio.sleep(1)
    await backend.close(stop_replicas=True)
    return times


def requests_per_s(home: Path, env: dict[str, str], seconds: int, connections: int) -> float:
    """wrk's requests/s through the gateway of a `wharf up` (with `env`) to one WhoAmI replica."""
    daemon = start_daemon(home, env=env)
    try:
        daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor={"minReplicas": 1, "maxReplicas": 1}))
        daemon.wait("who", lambda s: any(r["ready"] for r in s["status"].get("replicaStates", [])), timeout=90)
        script = home / "post.lua"
        script.write_text(
            f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
            f"wrk.headers['Host'] = 'who.default.example.com'\nwrk.body = '{BODY}'\n"
        )
        url = f"{daemon.gateway_url}/v2/models/who/infer"
        command = ["wrk", "-t1", f"-c{connections}", "-d2s", "-s", str(script), url]
        subprocess.run(command, check=True, capture_output=True)  # warm-up
        command[3] = f"-d{seconds}s"
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        errors = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        assert not errors, out
        return float(next(line for line in out.splitlines() if line.startswith("Requests/sec")).split()[1])
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            local = asyncio.run(placement_s(LocalBackend(base / "local"), args.rounds))
            on_ray = asyncio.run(
                placement_s(RayBackend(base / "ray", RayBackendSettings(address=cluster.address)), args.rounds)
            )
            print(f"place a replica (s), median of {args.rounds}: local {statistics.median(local):.2f}"
                  f" {[round(t, 2) for t in local]}, ray {statistics.median(on_ray):.2f} {[round(t, 2) for t in on_ray]}")  # fmt: skip
            ray_env = {"WHARF_BACKEND": "ray", "WHARF_RAY_ADDRESS": cluster.address}
            for name, env in (("local", {}), ("ray", ray_env), ("local", {}), ("ray", ray_env)):
                rps = requests_per_s(base / f"up-{name}-{time.monotonic_ns()}", env, args.seconds, args.connections)
                print(f"gateway requests/s, {name} replica, {args.connections} connections: {rps:.0f}", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
