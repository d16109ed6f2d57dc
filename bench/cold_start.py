"""Cold start of a local replica: from scaling a revision from 0 to 1 until the first V2 inference answer over
HTTP, with the replica forked from the warm template (prewarm on) and started as a fresh interpreter (off).

    .venv/bin/python bench/cold_start.py [--trials 5]

Each mode gets a LocalBackend of its own in a temporary home. Its first scale-up is a warm-up, shown apart and
left out of the statistics: with prewarm on it includes starting the template. Each trial then scales to 1,
waits until the replica is ready (what the gateway's activator waits for), sends one iris row, checks the
answer, scales back to 0 and waits until the process is gone.
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
    while _exists(replica.pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"replica {replica.pid} did not stop")
        await asyncio.sleep(0.05)
    return elapsed


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def measure(prewarm: bool, model: Path, home: Path, trials: int) -> tuple[float, list[float]]:
    """(the warm-up's seconds, each trial's seconds) for one mode."""
    backend = LocalBackend(home, LocalBackendSettings(prewarm=prewarm))
    spec = ReplicaSpec("iris-00001", "iris", str(model))
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            warm_up = await scale_from_zero(backend, spec, client)
            return warm_up, [await scale_from_zero(backend, spec, client) for _ in range(trials)]
    finally:
        await backend.close(stop_replicas=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    trials = parser.parse_args().trials
    with tempfile.TemporaryDirectory(prefix="wharf-cold-start-") as tmp:
        model = Path(tmp) / "model.joblib"
        subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(model)], check=True)
        homes = {mode: Path(tmp) / f"home-{mode}" for mode in ("on", "off")}
        results = {mode: asyncio.run(measure(mode == "on", model, home, trials)) for mode, home in homes.items()}
    print(f"iris, scale 0 -> 1 -> first V2 answer over HTTP, {trials} trials (seconds)")
    print(f"{'prewarm':<8} {'p50':>6} {'max':>6} {'warm-up':>8}  trials")
    for mode, (warm_up, times) in results.items():
        each = " ".join(f"{t:.3f}" for t in times)
        print(f"{mode:<8} {statistics.median(times):6.3f} {max(times):6.3f} {warm_up:8.3f}  {each}")


if __name__ == "__main__":
    main()
