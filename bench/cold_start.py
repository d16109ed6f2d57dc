"""Cold start of a local replica: from scaling a revision from 0 to 1 until the first V2 inference answer over
HTTP, with the replica handed over from the revision's standby (the default: a process forked from the template
that has loaded the model while the revision was at zero), forked from the warm template (standby off) and started
as a fresh interpreter (prewarm off).

    .venv/bin/python bench/cold_start.py [--trials 5] [--modes standby,template,fresh]

Each mode gets a LocalBackend of its own in a temporary home. Its first scale-up is a warm-up, shown apart and
left out of the statistics: with prewarm on it includes starting the template. Each trial then scales to 1,
waits until the replica is ready (what the gateway's activator waits for), sends one iris row, checks the
answer, scales back to 0 and waits until the process is gone (and, with standbys, until the next standby stands
by: a revision stays at zero for longer than that). What keeping the standby costs is printed: its private memory
(what it holds beyond the pages it shares with the template) and its resident size.
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

import httpx

from wharf.control.backends import LocalBackend, LocalBackendSettings, ReplicaSpec

ROOT = Path(__file__).resolve().parents[1]
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
TIMEOUT_S = 60.0
MIB = 1 << 20


async def scale_from_zero(backend: LocalBackend, spec: ReplicaSpec, client: httpx.AsyncClient) -> float:
    """Seconds from `scale(spec, 1)` to the first correct answer; the replica is stopped again afterwards."""
    ready = asyncio.Event()
    backend.on_change = lambda: any(s.ready for s in backend.replicas(spec.revision)) and ready.set()
    began = time.perf_counter()
    await backend.scale(spec, 1)
    await asyncio.wait_for(ready.wait(), TIMEOUT_S)
    [replica] = backend.replicas(spec.revision)
    answer = await client.post(f"http://127.0.0.1:{replica.http_port}/v2/models/{spec.model_name}/infer", json=BODY)
    elapsed = time.perf_counter() - began
    if answer.status_code != 200 or answer.json()["outputs"][0]["data"] != [0]:
        raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text}")
    await backend.scale(spec, 0)
    deadline = time.monotonic() + TIMEOUT_S
    while _exists(replica.pid) or (backend.standbys and spec.revision not in backend.standbys.memory()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica {replica.pid} did not stop, or no standby stood by")
        await asyncio.sleep(0.05)
    return elapsed


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


MODES = {  # what each mode turns off
    "standby": LocalBackendSettings(),
    "template": LocalBackendSettings(standby=False),
    "fresh": LocalBackendSettings(prewarm=False),
}


async def measure(
    settings: LocalBackendSettings, model: Path, home: Path, trials: int
) -> tuple[float, list[float], tuple[int, int] | None]:
    """(the warm-up's seconds, each trial's seconds, the standby's (private, resident) bytes) for one mode."""
    backend = LocalBackend(home, settings)
    spec = ReplicaSpec("iris-00001", "iris", str(model))
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            warm_up = await scale_from_zero(backend, spec, client)
            times = [await scale_from_zero(backend, spec, client) for _ in range(trials)]
            standby = backend.standbys.memory().get(spec.revision) if backend.standbys else None
            return warm_up, times, standby[1:] if standby else None
    finally:
        await backend.close(stop_replicas=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="wharf-cold-start-") as tmp:
        model = Path(tmp) / "model.joblib"
        subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(model)], check=True)
        results = {
            mode: asyncio.run(measure(MODES[mode], model, Path(tmp) / f"home-{mode}", args.trials)) for mode in modes
        }
    print(f"iris, scale 0 -> 1 -> first V2 answer over HTTP, {args.trials} trials (seconds)")
    print(f"{'mode':<9} {'p50':>6} {'max':>6} {'warm-up':>8}  trials")
    for mode, (warm_up, times, _) in results.items():
        each = " ".join(f"{t:.3f}" for t in times)
        print(f"{mode:<9} {statistics.median(times):6.3f} {max(times):6.3f} {warm_up:8.3f}  {each}")
    for mode, (_, _, standby) in results.items():
        if standby:
            private, resident = standby
            print(
                f"keeping the standby warm ({mode}): {private / MIB:.1f} MiB private, {resident / MIB:.1f} MiB resident"
            )


if __name__ == "__main__":
    main()
