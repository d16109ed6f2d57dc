"""Multi-model serving at density: 1,000 small scikit-learn models in `wharf serve` replicas, Zipf requests.

    .venv/bin/python bench/mms.py [--models 1000] [--connections 64] [--duration 10s] [--rounds 2] [--fits 200]
        [--hits-only]

Every model is the iris LogisticRegression answering 100 x its number + the iris class (so a wrong model's answer
shows), written with joblib to its own directory. Each round measures (`--rounds` times):
1. `single` and 2. `hits` at once, side by side on the same core, each with its own wrk at `--connections`, so that
   a shared machine disturbs both alike: `single` is a single-model server (`wharf serve m0/model.joblib --name
   m0`), every request for m0; `hits` one replica with the N models registered and loaded, no budget, requests
   spread over them by a Zipf distribution (exponent `--zipf`): every request is a cache hit;
3. `zipf`: one replica whose budget fits `--fits` models (the sizes measured in point 2), the same requests: models
   load on their first request and the least recently used are evicted;
4. `two`: two replicas as in 3, half the connections on each (the issue's InferenceService with two replicas,
   without the gateway: each replica sees the Zipf spread over every model).
`--hits-only` measures points 1 and 2 only (the cache-hit bar).
Servers run on CPU 0 and wrk on CPU 1 (as bench/lib.sh pins them); every request is a 1-row V2 JSON infer request,
chosen per request by a wrk Lua script (the same script, with one model, drives point 1). Before measuring, the
answers are checked (in point 2 every model's, which also makes its first request, before the warm-up; in points 3
and 4 a sample's).

Reported per point: requests/s, p50 and p99 (wrk --latency), errors, the servers' CPU time per request (utime +
stime from /proc/PID/stat over the measurement, divided by the requests wrk counted: the figure a shared machine
disturbs least), the hit ratio over the measurement (from `GET /v2/repository/memory`), evictions, models loaded,
the bytes the replica measured for its models and the servers' resident memory (VmRSS). Then the hit path against
the single-model server (requests/s, p99 and CPU per request ratios).
Output: a Markdown table printed and written to bench/results/mms.md, wrk outputs in bench/results/raw/mms/.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import parse_wrk  # noqa: E402  (bench/report.py: the wrk output parser every benchmark uses)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
PORTS = (18130, 18131)
READY_TIMEOUT_S = 120.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROW = [5.1, 3.5, 1.4, 0.2]  # a setosa: class 0
LUA = """
-- Zipf-distributed V2 infer requests over models m0..m{N-1} (N = MMS_MODELS, exponent MMS_ZIPF).
local n = tonumber(os.getenv("MMS_MODELS"))
local s = tonumber(os.getenv("MMS_ZIPF"))
local body = '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
local headers = {["Content-Type"] = "application/json"}
local cdf, paths = {}, {}
local total = 0
for k = 1, n do
  total = total + 1 / k ^ s
  cdf[k] = total
  paths[k] = "/v2/models/m" .. (k - 1) .. "/infer"
end
for k = 1, n do cdf[k] = cdf[k] / total end
math.randomseed(tonumber(os.getenv("MMS_SEED")))

request = function()
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("POST", paths[lo], headers, body)
end
"""


def write_models(root: Path, count: int) -> None:
    fitted = LogisticRegression(max_iter=300).fit(*load_iris(return_X_y=True))
    for i in range(count):
        model = copy.copy(fitted)
        model.classes_ = fitted.classes_ + 100 * i
        (root / f"m{i}").mkdir()
        joblib.dump(model, root / f"m{i}" / "model.joblib")


class Server:
    """`wharf serve` on CPU 0, its log in bench/results/logs/."""

    def __init__(self, port: int, args: list[str], log_name: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        log = open(RESULTS / "logs" / f"{log_name}.log", "w")  # noqa: SIM115 (closed with the process)
        command = ["taskset", "-c", "0", str(PYTHON), "-m", "wharf.cli", "serve", *args]
        command += ["--http-port", str(port), "--grpc-port", "0"]
        env = {**os.environ, "WHARF_LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if self.client.get("/v2/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wharf serve {' '.join(args)} did not start; see {log.name}")
            time.sleep(0.2)

    def register(self, models: Path, count: int, lazy: bool) -> None:
        for i in range(count):
            body = {"parameters": {"storage_uri": str(models / f"m{i}"), "model_format": "sklearn", "lazy": lazy}}
            answer = self.client.post(f"/v2/repository/models/m{i}/load", json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"registering m{i}: {answer.status_code} {answer.text}")

    def check(self, indexes: Iterable[int]) -> None:
        for i in indexes:
            body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
            answer = self.client.post(f"/v2/models/m{i}/infer", json=body)
            if answer.status_code != 200 or answer.json()["outputs"][0]["data"] != [100 * i]:
                raise RuntimeError(f"m{i} answered {answer.status_code}: {answer.text}")

    def memory(self) -> dict:
        return self.client.get("/v2/repository/memory").json()

    def index(self) -> list[dict]:
        return self.client.post("/v2/repository/index").json()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """The process's user + system CPU time so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def run_wrk(
    targets: list[tuple[Server, int]], connections: int, args: argparse.Namespace, script: Path, name: str
) -> list[dict]:
    """wrk on CPU 1 against every (server, models) target at once, `connections` each: each target's figures, with
    its server's CPU microseconds per request (`cpu_us`) over the measurement."""
    results: list[dict] = []
    for duration, keep in ((args.warmup, False), (args.duration, True)):
        cpu_before = [server.cpu_seconds() for server, _ in targets]
        procs = []
        for n, (server, models) in enumerate(targets):
            env = {**os.environ, "MMS_MODELS": str(models), "MMS_ZIPF": str(args.zipf), "MMS_SEED": str(17 + n)}
            command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency"]
            command += ["--timeout", "30s"]  # a request waiting for its model's load is slow, not lost
            procs.append(
                subprocess.Popen([*command, "-s", str(script), server.url], stdout=subprocess.PIPE, text=True, env=env)
            )
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        cpu = [server.cpu_seconds() - before for (server, _), before in zip(targets, cpu_before)]
        if keep:
            for n, text in enumerate(outputs):
                (RESULTS / "raw" / "mms" / f"{name}-{n}.txt").write_text(text)
            results = [parse_wrk(text) | {"cpu_us": cpu_us(seconds, text)} for seconds, text in zip(cpu, outputs)]
    return results


def cpu_us(seconds: float, wrk_output: str) -> float:
    """CPU microseconds per request: `seconds` of CPU over the requests wrk counted (`N requests in ...`)."""
    found = re.search(r"^\s*(\d+) requests in", wrk_output, re.M)
    return seconds / int(found.group(1)) * 1e6 if found and int(found.group(1)) else float("nan")


def measure(
    servers: list[Server], models: int, connections: int, args: argparse.Namespace, script: Path, name: str
) -> dict:
    """wrk's figures over `servers` at once (requests/s and errors summed, latency the worst) with the repository's."""
    before = [s.memory() for s in servers]
    results = run_wrk([(s, models) for s in servers], connections, args, script, name)
    after = [s.memory() for s in servers]
    hits = sum(a["hits"] - b["hits"] for a, b in zip(after, before))
    misses = sum(a["misses"] - b["misses"] for a, b in zip(after, before))
    return {
        "rps": sum(r["rps"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "cpu_us": statistics.fmean(r["cpu_us"] for r in results),
        "hit_ratio": hits / (hits + misses) if hits + misses else None,
        "evictions": sum(a["evictions"] - b["evictions"] for a, b in zip(after, before)),
        "loaded": sum(a["models_loaded"] for a in after),
        "used": sum(a["used_bytes"] for a in after),
        "rss": sum(s.rss() for s in servers),
    }


def one_round(models_dir: Path, args: argparse.Namespace, script: Path, round_no: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    n, c = args.models, args.connections
    sample = sorted({0, 1, 2, n // 2, n - 1})
    single = Server(PORTS[0], [str(models_dir / "m0" / "model.joblib"), "--name", "m0"], f"mms-single-{round_no}")
    hits = Server(PORTS[1], [str(models_dir / "empty")], f"mms-hits-{round_no}")
    try:
        single.check([0])
        hits.register(models_dir, n, lazy=False)
        hits.check(range(n))  # every model answers right, and has served once: the hit path in its steady state
        index = hits.index()
        before = hits.memory()
        pair = run_wrk([(single, 1), (hits, n)], c, args, script, f"pair-{round_no}")  # side by side, at once
        after = hits.memory()
        misses = after["misses"] - before["misses"]
        results["single"] = pair[0] | {
            "hit_ratio": None,
            "evictions": 0,
            "loaded": 1,
            "used": None,
            "rss": single.rss(),
        }
        results["hits"] = pair[1] | {
            "hit_ratio": 1 - misses / max(1, after["hits"] + misses - before["hits"]),
            "evictions": after["evictions"] - before["evictions"],
            "loaded": after["models_loaded"],
            "used": after["used_bytes"],
            "rss": hits.rss(),
        }
        sizes = [row["resident_bytes"] for row in index]
        results["sizes"] = {
            "min": min(sizes),
            "median": statistics.median(sizes),
            "max": max(sizes),
            "by": sorted({row["measured_by"] for row in index}),
        }
    finally:
        single.stop()
        hits.stop()
    if args.hits_only:
        return results
    budget = int(args.fits * results["sizes"]["median"])
    results["budget"] = {"bytes": budget}
    for name, ports in (("zipf", PORTS[:1]), ("two", PORTS)):
        servers = []
        try:
            for k, port in enumerate(ports):
                args_k = [str(models_dir / "empty"), "--memory-budget", str(budget)]
                servers.append(Server(port, args_k, f"mms-{name}{k}-{round_no}"))
            for server in servers:
                server.register(models_dir, n, lazy=True)
                server.check(sample)
            results[name] = measure(servers, n, max(1, c // len(servers)), args, script, f"{name}-{round_no}")
        finally:
            for server in servers:
                server.stop()
    return results


def table(rounds: list[dict[str, dict]], args: argparse.Namespace) -> str:
    mib = 2**20
    budget = (
        "points zipf/two not run (--hits-only)"
        if args.hits_only
        else f"budget of points zipf/two: {args.fits} models' measured median size each "
        f"({rounds[0]['budget']['bytes']} bytes)"
    )
    lines = [
        f"{args.models} models, {args.connections} connections, Zipf exponent {args.zipf}, {args.duration} per point "
        f"after {args.warmup} warm-up; {budget}. Load average before: {os.getloadavg()[0]:.1f}.",
        "",
        "| round | point | requests/s | p50 ms | p99 ms | errors | server CPU us/request | hit ratio | evictions | "
        "models loaded | measured MiB | servers' RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r, results in enumerate(rounds, 1):
        for point in ("single", "hits", "zipf", "two")[: 2 if args.hits_only else 4]:
            f = results[point]
            ratio = "" if f["hit_ratio"] is None else f"{f['hit_ratio']:.3f}"
            used = "" if f["used"] is None else f"{f['used'] / mib:.1f}"
            lines.append(
                f"| {r} | {point} | {f['rps']:.0f} | {f['p50']:.2f} | {f['p99']:.2f} | {f['errors']} | "
                f"{f['cpu_us']:.1f} | {ratio} | "
                f"{f['evictions']} | {f['loaded']} | {used} | {f['rss'] / mib:.0f} |"
            )
    lines.append("")
    for r, results in enumerate(rounds, 1):
        single, hits, sizes = results["single"], results["hits"], results["sizes"]
        lines.append(
            f"Round {r}: cache hits vs the single-model server: requests/s {hits['rps'] / single['rps']:.3f}, "
            f"p99 {hits['p99'] / single['p99']:.3f}, CPU per request {hits['cpu_us'] / single['cpu_us']:.3f}; "
            f"measured model sizes (bytes) min {sizes['min']}, median "
            f"{sizes['median']:.0f}, max {sizes['max']}, measured by {', '.join(sizes['by'])}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fits", type=int, default=200, help="models the budget of points zipf and two fits")
    parser.add_argument("--zipf", type=float, default=1.1, help="the Zipf distribution's exponent")
    parser.add_argument("--hits-only", action="store_true", help="points single and hits only (the cache-hit bar)")
    args = parser.parse_args()
    for directory in (RESULTS / "logs", RESULTS / "raw" / "mms"):
        directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wharf-mms-") as tmp:
        models_dir = Path(tmp)
        write_models(models_dir, args.models)
        (models_dir / "empty").mkdir()
        script = models_dir / "zipf.lua"
        script.write_text(LUA)
        rounds = [one_round(models_dir, args, script, r) for r in range(1, args.rounds + 1)]
    report = table(rounds, args)
    (RESULTS / "mms.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
