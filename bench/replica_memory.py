"""Resident memory of a model server serving the iris model: Wharf's `wharf serve` (what a replica runs, REST and
gRPC), a replica of `wharf up`'s local backend (forked from the warm template) and the standby a revision at zero
keeps, beside KServe 0.21's server (bench/kserve_iris.py, REST and gRPC) where bench/.venvs/kserve exists
(bench/lib.sh's `ensure_venv kserve`, as bench/rest_iris.sh makes it).

    .venv/bin/python bench/replica_memory.py [--requests 200]

Each server is started alone, answers `--requests` V2 iris requests over HTTP (one row each, one after another),
and then its memory is read from /proc: VmRSS (resident, what the issue's bar is about), and the private part
(smaps_rollup's Private_Clean + Private_Dirty: what it holds beyond pages shared with other processes, which for a
process forked from the template is what it costs on top of the template). Every server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from wharf.control.backends import LocalBackend, LocalBackendSettings, ReplicaSpec
from wharf.control.backends.logfile import serving_ports
from wharf.control.backends.memory import private_bytes

ROOT = Path(__file__).resolve().parents[1]
KSERVE = ROOT / "bench/.venvs/kserve/bin/python"
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
TIMEOUT_S = 120.0
MIB = 1 << 20


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def load(url: str, requests: int) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(requests):
            answer = client.post(url, json=BODY)
            if answer.status_code != 200 or answer.json()["outputs"][0]["data"] != [0]:
                raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_process(
    command: list[str], url_of: object, log: Path, requests: int, env: dict[str, str]
) -> tuple[int, int]:
    """Start `command` (output to `log`), wait until `url_of(log text)` gives its inference URL and it answers,
    load it, and read its memory; (resident, private) bytes."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while (url := url_of(log.read_text())) is None or not _answers(url):  # type: ignore[operator]
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:4]} did not serve: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        load(url, requests)
        return resident(process.pid), private_bytes(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.post(url, json=BODY, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wharf_url(text: str) -> str | None:
    for line in text.splitlines():
        if ports := serving_ports(line):
            return f"http://127.0.0.1:{ports[0]}/v2/models/iris/infer"
    return None


async def local_backend(model: Path, home: Path, requests: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resident, private) of a replica forked from the template, then of the standby kept once it is at zero."""
    backend = LocalBackend(home, LocalBackendSettings())
    spec = ReplicaSpec("iris-00001", "iris", str(model))
    try:
        await backend.scale(spec, 1)
        deadline = time.monotonic() + TIMEOUT_S
        while not (states := [s for s in backend.replicas(spec.revision) if s.ready]):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not become ready")
            await asyncio.sleep(0.05)
        [replica] = states
        await asyncio.to_thread(load, f"http://127.0.0.1:{replica.http_port}/v2/models/iris/infer", requests)
        forked = resident(replica.pid), private_bytes(replica.pid)
        await backend.scale(spec, 0)
        assert backend.standbys is not None
        while not (standby := backend.standbys.memory().get(spec.revision)):
            if time.monotonic() > deadline:
                raise RuntimeError("no standby stood by")
            await asyncio.sleep(0.05)
        _, private, resident_bytes = standby
        return forked, (resident_bytes, private)
    finally:
        await backend.close(stop_replicas=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    requests = parser.parse_args().requests
    results: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="wharf-memory-") as tmp:
        model = Path(tmp) / "iris.joblib"
        subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(model)], check=True)
        env = {**os.environ, "WHARF_LOG_LEVEL": "INFO"}
        serve = [sys.executable, "-m", "wharf.cli", "serve", "--http-port", "0", "--grpc-port", "0", "--", str(model)]
        results["wharf serve"] = measure_process(serve, wharf_url, Path(tmp) / "wharf.log", requests, env)
        forked, standby = asyncio.run(local_backend(model, Path(tmp) / "home", requests))
        results["wharf up replica (forked from the template)"] = forked
        results["wharf up standby (revision at zero)"] = standby
        if KSERVE.exists():
            http, grpc = free_port(), free_port()
            kserve = [
                str(KSERVE), str(ROOT / "bench/kserve_iris.py"), str(model), "--http_port", str(http),
                "--model_name", "iris", "--enable_grpc", "true", "--grpc_port", str(grpc),
            ]  # fmt: skip
            url = f"http://127.0.0.1:{http}/v2/models/iris/infer"
            kserve_env = {**os.environ, "KSERVE_LOGLEVEL": "WARNING"}
            results["KServe 0.21"] = measure_process(
                kserve, lambda _: url, Path(tmp) / "kserve.log", requests, kserve_env
            )
        else:
            print(f"(no {KSERVE}: KServe not measured)")
    print(f"iris, after {requests} V2 requests over HTTP (MiB)")
    print(f"{'server':<46} {'resident':>9} {'private':>8}")
    for name, (rss, private) in results.items():
        print(f"{name:<46} {rss / MIB:9.1f} {private / MIB:8.1f}")


if __name__ == "__main__":
    main()
