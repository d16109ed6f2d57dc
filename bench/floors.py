"""Wharf's REST and gateway request paths against their floors, side by side in one run (issue #27).

Points (each server alone, pinned to CPU 0 unless said; wrk on CPU 1 POSTs bench/post.lua's 1-row V2 JSON request
over keep-alive connections, after a warm-up):
- rest: `floor` (bench/rest_floor.py: a bare ASGI app on the same embedded uvicorn that parses the JSON body and
  answers a fixed reply), `minimal-v2` (bench/rest_minimal_v2.py: the least any V2 server does for this request on
  that stack: parse, array, the logistic arithmetic, encode; no checks, metrics or batching), `wharf` (`wharf serve` of iris, no batching), `wharf-batch` (`--max-batch-size 64`);
- models: per scikit-learn model (iris LogisticRegression, a decision tree, gradient boosting, a scaler +
  logistic pipeline, all on iris's 4 features): `loop-MODEL` (bench/model_loop.py: decode the same JSON,
  predict, encode, in one process on CPU 0) and `wharf-MODEL` (`wharf serve` of it, no batching);
- grpc: `grpc-floor` (bench/diagnosis/grpc_floor.py: grpc.aio on uvloop answering a constant ModelInfer) and
  `wharf-grpc` (`wharf serve` of iris, its gRPC port), loaded by bench/grpc_load.py on CPU 1 (`--connections`
  calls in flight on one channel; its Python bounds the calls/s, so read the CPU per call);
- gateway: bench/gateway_pair.py with the gateway on CPU 0 and the replica on CPU 1 (beside wrk): `direct` (to the
  replica), `gateway`, `gateway-logged` (payload logging of every request and response to bench/event_sink.py)
  and `gateway-traced` (tracing on, every request sampled, spans to bench/otlp_sink.py).

For every point: requests/s, p50 and p99 (wrk), and CPU microseconds per request of the server's processes
(utime + stime from /proc/PID/stat before and after, over the requests wrk counted; for the gateway, its process
and the replica's apart). CPU per request barely moves when other work shares the machine, requests/s does: on a
loaded machine read the CPU columns. Each point's ratio is to its floor (wharf, wharf-batch: `floor`;
wharf-MODEL: loop-MODEL; wharf-grpc: grpc-floor; gateway points: `direct`, and the CPU column is then the gateway's
own CPU per proxied request), by requests/s and by CPU per request.

    .venv/bin/python bench/floors.py [--points rest,models,grpc,gateway] [--connections 64] [--duration 10]
        [--warmup 2] [--port 18300]

Writes the table to stdout and bench/results/floors.md; server logs in bench/results/logs/floors-*.log.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import joblib
import orjson
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
HOST = "127.0.0.1"
SERVICE_HOST = "iris.default.example.com"
LOGGED_HOST = "logged.default.example.com"
TICK = os.sysconf("SC_CLK_TCK")
MODELS = {
    "iris": lambda: LogisticRegression(max_iter=1000),
    "tree": lambda: DecisionTreeClassifier(random_state=0),
    "gbc": lambda: GradientBoostingClassifier(random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
}


@dataclass
class Point:
    name: str
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_us: float  # of the server (the gateway's own for gateway points)
    replica_cpu_us: float | None = None  # gateway points: the replica's
    floor: str | None = None


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of every process in the sessions led by `pids` (threads included)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) in pids or int(fields[3]) in pids:  # fields[3]: the session id
            total += int(fields[11]) + int(fields[12])
    return total


def process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wrk(seconds: float, connections: int, url: str, host: str | None = None) -> dict[str, float]:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    command += ["-s", str(ROOT / "bench" / "post.lua"), url]
    if host:
        command += ["-H", f"Host: {host}"]
    text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    result = {"requests": float(re.search(r"(\d+) requests in", text).group(1))}
    result["per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
        result[f"p{pct}"] = float(match.group(1)) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        sys.exit(f"floors.py: {errors.group(1)} requests failed against {url}")
    return result


class Server:
    """A server process of its own session, pinned to `cpu`, stopped by its PID."""

    def __init__(
        self,
        name: str,
        command: list[str],
        ready_url: str | None,
        cpu: int = 0,
        env: dict | None = None,
        ready_host: str | None = None,
    ) -> None:
        self.log = open(OUT / "logs" / f"floors-{name}.log", "w")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *command],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | (env or {}),
            cwd=ROOT,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                sys.exit(f"floors.py: {name} exited before it was ready (log: {self.log.name})")
            if self._ready(ready_url, ready_host):
                break
            if time.monotonic() > deadline:
                self.stop()
                sys.exit(f"floors.py: {name} was not ready within 90 s (log: {self.log.name})")
            time.sleep(0.3)

    def _ready(self, url: str | None, host: str | None) -> bool:
        """Whether `url` answers 200 (with `host` as its Host header); no URL: whether the log says it serves."""
        if url is None:
            return "serving" in Path(self.log.name).read_text()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host} if host else {}), timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


def measure(
    name: str,
    args: argparse.Namespace,
    url: str,
    pids: list[int],
    host: str | None = None,
    apart: int | None = None,
    floor: str | None = None,
) -> Point:
    """wrk against `url` (warm-up, then the measure), the CPU of `pids`' sessions; `apart`: a child whose CPU is
    reported on its own (and not counted in the server's)."""
    wrk(args.warmup, args.connections, url, host)
    before, child_before = cpu_ticks(pids), process_ticks(apart) if apart else 0
    result = wrk(args.duration, args.connections, url, host)
    after, child_after = cpu_ticks(pids), process_ticks(apart) if apart else 0
    per_request = 1e6 / TICK / result["requests"]
    child = child_after - child_before
    point = Point(
        name,
        result["per_s"],
        result["p50"],
        result["p99"],
        ((after - before) - child) * per_request,
        child * per_request if apart else None,
        floor,
    )
    print(
        f"  {name}: {point.per_s:,.0f} req/s, p99 {point.p99_ms:.2f} ms, {point.cpu_us:.1f} CPU us/request"
        + (f" (replica {point.replica_cpu_us:.1f})" if apart else ""),
        flush=True,
    )
    return point


def wharf_serve(name: str, model: Path, port: int, *options: str, cpu: int = 0) -> Server:
    command = [
        str(ROOT / ".venv" / "bin" / "wharf"),
        "serve",
        str(model),
        "--name",
        "iris",
        "--host",
        HOST,
        "--http-port",
        str(port),
        "--grpc-port",
        str(port + 1),
        "--workers",
        "1",
        *options,
    ]
    return Server(name, command, f"http://{HOST}:{port}/v2/models/iris/ready", cpu)


def infer_url(port: int, model: str = "iris") -> str:
    return f"http://{HOST}:{port}/v2/models/{model}/infer"


def served(name: str, server: Server, args: argparse.Namespace, url: str, floor: str | None = None) -> Point:
    try:
        return measure(name, args, url, [server.process.pid], floor=floor)
    finally:
        server.stop()


def rest_points(args: argparse.Namespace, models: dict[str, Path]) -> list[Point]:
    port = args.port
    floor = Server("floor", [PYTHON, "bench/rest_floor.py", str(port)], f"http://{HOST}:{port}/")
    points = [served("floor", floor, args, infer_url(port))]
    minimal = Server(
        "minimal-v2", [PYTHON, "bench/rest_minimal_v2.py", str(port), str(models["iris"])], f"http://{HOST}:{port}/"
    )
    points.append(served("minimal-v2", minimal, args, infer_url(port), "floor"))
    points.append(served("wharf", wharf_serve("wharf", models["iris"], port), args, infer_url(port), "floor"))
    batching = wharf_serve("wharf-batch", models["iris"], port, "--max-batch-size", "64")
    points.append(served("wharf-batch", batching, args, infer_url(port), "floor"))
    return points


def model_points(args: argparse.Namespace, models: dict[str, Path]) -> list[Point]:
    points = []
    for model, path in models.items():
        command = ["taskset", "-c", "0", PYTHON, "bench/model_loop.py", str(path), str(args.duration)]
        loop = orjson.loads(subprocess.run(command, capture_output=True, check=True, cwd=ROOT).stdout)
        points.append(Point(f"loop-{model}", loop["per_s"], None, None, loop["cpu_us"]))
        print(f"  loop-{model}: {loop['per_s']:,.0f} per s, {loop['cpu_us']:.1f} CPU us/iteration", flush=True)
        server = wharf_serve(f"wharf-{model}", path, args.port)
        points.append(served(f"wharf-{model}", server, args, infer_url(args.port), f"loop-{model}"))
    return points


def gateway_points(args: argparse.Namespace, models: dict[str, Path]) -> list[Point]:
    port = args.port
    replica, gateway, sink_port = port + 2, port, port + 4
    points = []
    sinks = []
    try:
        for script, sink in (("event_sink.py", sink_port), ("otlp_sink.py", sink_port + 1)):
            log = open(OUT / "logs" / f"floors-{script}.log", "w")
            sinks.append(
                subprocess.Popen(
                    ["taskset", "-c", "1", PYTHON, f"bench/{script}", str(sink)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=ROOT,
                )
            )
        for traced in (False, True):
            env = {"WHARF_BENCH_REPLICA_CPU": "1"}
            if traced:
                env |= {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{sink_port + 1}",
                    "OTEL_TRACES_SAMPLER": "always_on",
                }
            command = [
                PYTHON,
                "bench/gateway_pair.py",
                str(models["iris"]),
                str(replica),
                str(replica + 1),
                str(gateway),
                str(gateway + 1),
                f"http://{HOST}:{sink_port}/",
            ]
            pair = Server(
                "gateway-pair", command, f"http://{HOST}:{gateway}/v2/models/iris/ready", 0, env, SERVICE_HOST
            )
            try:
                child = _child(pair.process.pid)
                if not traced:
                    points.append(measure("direct", args, infer_url(replica), [child]))
                    points.append(
                        measure("gateway", args, infer_url(gateway), [pair.process.pid], SERVICE_HOST, child, "direct")
                    )
                    points.append(
                        measure(
                            "gateway-logged", args, infer_url(gateway), [pair.process.pid], LOGGED_HOST, child, "direct"
                        )
                    )
                else:
                    points.append(
                        measure(
                            "gateway-traced",
                            args,
                            infer_url(gateway),
                            [pair.process.pid],
                            SERVICE_HOST,
                            child,
                            "direct",
                        )
                    )
            finally:
                pair.stop()
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait(10)
    return points


def grpc_points(args: argparse.Namespace, models: dict[str, Path]) -> list[Point]:
    port = args.port
    floor = Server("grpc-floor", [PYTHON, "bench/diagnosis/grpc_floor.py", str(port + 1), "uvloop"], None)
    points = [grpc_measured("grpc-floor", floor, args, port + 1)]
    points.append(
        grpc_measured("wharf-grpc", wharf_serve("wharf-grpc", models["iris"], port), args, port + 1, "grpc-floor")
    )
    return points


def grpc_measured(name: str, server: Server, args: argparse.Namespace, port: int, floor: str | None = None) -> Point:
    """bench/grpc_load.py on CPU 1 against `port` (warm-up, then the measure), the CPU of `server`'s session."""

    def load(seconds: float) -> dict[str, float]:
        command = [
            "taskset",
            "-c",
            "1",
            PYTHON,
            "bench/grpc_load.py",
            f"{HOST}:{port}",
            str(seconds),
            str(args.connections),
        ]
        result = orjson.loads(subprocess.run(command, capture_output=True, check=True, cwd=ROOT).stdout)
        if result["errors"]:
            sys.exit(f"floors.py: {result['errors']} gRPC calls failed against {name}")
        return result

    try:
        load(args.warmup)
        before = cpu_ticks([server.process.pid])
        result = load(args.duration)
        after = cpu_ticks([server.process.pid])
    finally:
        server.stop()
    point = Point(name, result["per_s"], None, None, (after - before) * 1e6 / TICK / result["calls"], None, floor)
    print(f"  {name}: {point.per_s:,.0f} calls/s, {point.cpu_us:.1f} CPU us/call", flush=True)
    return point


def _child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


def train(directory: Path) -> dict[str, Path]:
    features, labels = load_iris(return_X_y=True)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in MODELS.items():
        paths[name] = directory / f"{name}.joblib"
        joblib.dump(make().fit(features, labels), paths[name])
    return paths


def report(points: list[Point], args: argparse.Namespace) -> str:
    by_name = {p.name: p for p in points}
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}; "
        f"{args.connections} connections, {args.duration} s per point after {args.warmup} s",
        "",
        "| point | req/s | p50 ms | p99 ms | CPU us/request | replica CPU us | floor | req/s ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for p in points:
        floor = by_name.get(p.floor or "")
        ratio = f"{p.per_s / floor.per_s:.2f}" if floor else ""
        cpu_ratio = f"{floor.cpu_us / (p.cpu_us + (p.replica_cpu_us or 0)):.2f}" if floor else ""
        if floor and p.replica_cpu_us is not None:  # gateway: the replica's CPU against the direct point's
            cpu_ratio = f"+{p.cpu_us:.1f} us"
        lines.append(
            f"| {p.name} | {p.per_s:,.0f} | {_ms(p.p50_ms)} | {_ms(p.p99_ms)} | {p.cpu_us:.1f} | "
            f"{'' if p.replica_cpu_us is None else f'{p.replica_cpu_us:.1f}'} | {p.floor or ''} | {ratio} | {cpu_ratio} |"
        )
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="rest,models,grpc,gateway")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--port", type=int, default=18300)
    args = parser.parse_args()
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    models = train(OUT / "work" / "floors")
    runs = {"rest": rest_points, "models": model_points, "gateway": gateway_points, "grpc": grpc_points}
    points: list[Point] = []
    for name in args.points.split(","):
        print(f"== {name}", flush=True)
        points += runs[name](args, models)
    table = report(points, args)
    print(table)
    (OUT / "floors.md").write_text(table)


if __name__ == "__main__":
    main()
