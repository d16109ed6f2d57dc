"""GPU serving benchmark (issue #5): Wharf serving a PyTorch model, and its ONNX export, against the limit of
calling the same model in a tight loop on the same device.

The models are built in code with seeded random weights (no downloads): a ResNet-50-shaped CNN, a BERT-base-sized
encoder, or a tiny MLP for a CPU check. Each is saved as TorchScript (`torch.jit.trace`), which Wharf serves with its
PyTorch runtime; the limit loads the same file the same way and calls it at each batch size. Wharf is then driven
over gRPC ModelInfer with raw tensors by N concurrent clients (spread over client processes), with batching on and
off. Results go to OUT/gpu_serving.md (the table, also printed), OUT/gpu_serving.json (every number) and
OUT/server.log (the servers' logs).

    PYTHONPATH=src python3 bench/gpu/serving.py --model resnet50,bert --device cuda --out /tmp/out
    PYTHONPATH=src .venv/bin/python bench/gpu/serving.py --model tiny --device cpu --duration-s 3 --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

import httpx
import numpy as np

from wharf.client.inference import InferenceClient
from wharf.errors import WharfError
from wharf.protocol.v2 import InferRequest, Tensor

if TYPE_CHECKING:  # torch is imported where it is used: client processes never load it
    import torch

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "m"
INPUT_NAME = "input"
TARGET = 0.80  # issue #5: Wharf with batching on reaches 80% of the limit at 64+ clients
SERVER_START_ESTIMATE_S = 15.0  # import torch, load the model, first CUDA call
_TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
_ORT_PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


# ---- workloads and models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """One row of a model's input: its shape and numpy dtype; `vocab` > 0 means token ids below it."""

    shape: tuple[int, ...]
    dtype: str
    vocab: int = 0

    def sample(self, rows: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if self.vocab:
            return rng.integers(0, self.vocab, (rows, *self.shape), dtype=np.int64)
        return rng.standard_normal((rows, *self.shape), dtype=np.float32).astype(self.dtype)


MODELS = {
    "resnet50": "ResNet-50 shape (bottlenecks 3-4-6-3), 3x224x224 images -> 1000 logits",
    "bert": "BERT-base size (12 layers, hidden 768, 12 heads, FFN 3072), 128 token ids -> pooled 768",
    "tiny": "MLP 64 -> 256 -> 10 (for the CPU check)",
}


def build_network(name: str) -> torch.nn.Module:
    """The network `name` (one of MODELS) with weights drawn from seed 0."""
    import torch

    torch.manual_seed(0)
    if name == "resnet50":
        return _resnet50()
    if name == "bert":
        return _bert()
    return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def input_spec(name: str, dtype: str) -> InputSpec:
    """What a client sends `name`: floats in the model's dtype (numpy has no bfloat16: FP32, cast by the server)."""
    dtype = "float16" if dtype == "fp16" else "float32"
    if name == "resnet50":
        return InputSpec((3, 224, 224), dtype)
    if name == "bert":
        return InputSpec((128,), "int64", vocab=30522)
    return InputSpec((64,), dtype)


def _resnet50() -> torch.nn.Module:
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = 4 * width
            self.body = nn.Sequential(
                conv_bn(cin, width, 1), nn.ReLU(), conv_bn(width, width, 3, stride), nn.ReLU(), conv_bn(width, cout, 1)
            )
            self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.shortcut(x))

    layers: list[nn.Module] = [conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for block in range(blocks):
            layers.append(Bottleneck(cin, width, 2 if block == 0 and stage > 0 else 1))
            cin = 4 * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def _bert(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072) -> torch.nn.Module:
    import torch
    from torch import nn
    from torch.nn.functional import scaled_dot_product_attention

    class EncoderLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.out = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
            self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
            self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.qkv(x).unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
            attended = scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
            x = self.norm1(x + self.out(attended))
            return self.norm2(x + self.ffn(x))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words, self.positions = nn.Embedding(30522, hidden), nn.Embedding(128, hidden)
            self.norm = nn.LayerNorm(hidden)
            self.layers = nn.Sequential(*(EncoderLayer() for _ in range(layers)))
            self.pooler = nn.Linear(hidden, hidden)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.layers(self.norm(self.words(ids) + self.positions.weight))
            return torch.tanh(self.pooler(x[:, 0]))

    return Encoder()


def save_artifacts(
    name: str, spec: InputSpec, device: str, dtype: str, folder: Path, with_onnx: bool
) -> tuple[Path, Path | str]:
    """The TorchScript file, and the ONNX file (or why there is none)."""
    import torch

    module = build_network(name).eval().to(device, getattr(torch, _TORCH_DTYPES[dtype]))
    example = torch.from_numpy(spec.sample(2, seed=1)).to(device)
    with torch.inference_mode():
        traced = torch.jit.trace(module, example, check_trace=False)
    script = folder / f"{name}.pt"
    traced.save(str(script))
    if not with_onnx:
        import onnxruntime

        provider = _ORT_PROVIDERS[device]
        why = " (onnxruntime-gpu is not installed)" if device == "cuda" else ""
        return script, f"not measurable: onnxruntime {onnxruntime.__version__} has no {provider}{why}"
    onnx_file = folder / f"{name}.onnx"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice; it still works
            torch.onnx.export(
                module, (example,), str(onnx_file), input_names=[INPUT_NAME], output_names=["output"],
                dynamic_axes={INPUT_NAME: {0: "batch"}, "output": {0: "batch"}}, opset_version=17, dynamo=False,
            )  # fmt: skip
    except Exception as e:  # any exporter failure is a result to report, not a reason to stop
        return script, f"not measurable: ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return script, onnx_file


# ---- the limit: the model in a tight loop -----------------------------------------------------------------------
@dataclass
class Limit:
    runtime: str
    per_batch: dict[int, float]  # batch size -> rows/s
    best_batch: int = 0
    best: float = 0.0
    host_inclusive: float | None = None  # rows/s at best_batch with numpy in and out

    def __post_init__(self) -> None:
        self.best_batch, self.best = max(self.per_batch.items(), key=lambda item: item[1])


def rows_per_second(
    call: Callable[[], Any], rows: int, seconds: float, sync: Callable[[], None], rounds: int = 3
) -> float:
    """Throughput of repeating `call` (each `rows` rows): the best of `rounds` rounds that share `seconds`, after a
    warm-up, so that a round disturbed by other work does not count. `sync` waits for queued device work, so each
    round's time covers everything its calls started."""
    warm_until = time.perf_counter() + min(1.0, seconds)
    for _ in range(3):
        call()
    while time.perf_counter() < warm_until:
        call()
    sync()
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds / rounds:
            call()
            calls += 1
        sync()
        best = max(best, calls * rows / (time.perf_counter() - start))
    return best


def torch_limit(script: Path, spec: InputSpec, batch_sizes: list[int], device: str, seconds: float) -> Limit:
    """The TorchScript file loaded as Wharf loads it, called with inputs already on the device; then with numpy
    input and output (host to device, forward, device to host) at the best batch size."""
    import torch

    module = torch.jit.load(str(script), map_location=device).eval()
    dtype = next(p.dtype for p in module.parameters() if p.is_floating_point())
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None

    def on_device(array: np.ndarray) -> torch.Tensor:
        value = torch.from_numpy(array)
        return value.to(device, dtype if value.is_floating_point() else value.dtype)

    per_batch = {}
    with torch.inference_mode():
        for batch in batch_sizes:
            x = on_device(spec.sample(batch, seed=batch))
            per_batch[batch] = rows_per_second(lambda: module(x), batch, seconds, sync)
        limit = Limit("pytorch", per_batch)
        array = spec.sample(limit.best_batch, seed=7)
        limit.host_inclusive = rows_per_second(
            lambda: module(on_device(array)).cpu().numpy(), limit.best_batch, seconds, sync
        )
    return limit


def torch_reference(script: Path, rows: np.ndarray, device: str) -> np.ndarray:
    import torch

    module = torch.jit.load(str(script), map_location=device).eval()
    dtype = next(p.dtype for p in module.parameters() if p.is_floating_point())
    value = torch.from_numpy(rows)
    with torch.inference_mode():
        return module(value.to(device, dtype if value.is_floating_point() else value.dtype)).float().cpu().numpy()


def onnx_session(model: Path, device: str) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(model), providers=[_ORT_PROVIDERS[device]])


def onnx_limit(model: Path, spec: InputSpec, batch_sizes: list[int], device: str, seconds: float) -> Limit:
    """onnxruntime on the device's provider, numpy in and out (as Wharf's ONNX runtime calls it)."""
    session = onnx_session(model, device)
    per_batch = {}
    for batch in batch_sizes:
        feed = {INPUT_NAME: spec.sample(batch, seed=batch)}
        per_batch[batch] = rows_per_second(lambda: session.run(None, feed), batch, seconds, lambda: None)
    limit = Limit("onnx", per_batch)
    limit.host_inclusive = limit.best
    return limit


# ---- the Wharf server -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerConfig:
    max_batch_size: int
    max_latency_ms: float

    @property
    def label(self) -> str:
        if self.max_batch_size == 1:
            return "off"
        return f"on (≤{self.max_batch_size} rows, {self.max_latency_ms:g} ms)"


@dataclass
class RunningServer:
    process: subprocess.Popen
    grpc_target: str
    metrics_url: str


@contextmanager
def wharf_server(
    artifact: Path, config: ServerConfig, device: str, log: TextIO, start_timeout_s: float
) -> Iterator[RunningServer]:
    """`wharf serve ARTIFACT` on ephemeral ports, until the block ends (then SIGTERM, SIGKILL after 15 s)."""
    command = [
        sys.executable, "-m", "wharf.cli", "serve", str(artifact), "--name", MODEL_NAME,
        "--http-port", "0", "--grpc-port", "0",
        "--max-batch-size", str(config.max_batch_size), "--max-latency-ms", str(config.max_latency_ms),
    ]  # fmt: skip
    env = {**os.environ, "WHARF_DRAIN_TIMEOUT_S": "5"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    log.write(f"\n===== {shlex.join(command)}\n")
    log.flush()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ports = _wait_serving(process, log, start_timeout_s)
        yield RunningServer(
            process, f"127.0.0.1:{ports['grpc_port']}", f"http://127.0.0.1:{ports['http_port']}/metrics"
        )
    finally:
        _stop(process)


def _wait_serving(process: subprocess.Popen, log: TextIO, timeout_s: float) -> dict[str, Any]:
    """The server's JSON "serving" log line; its log is copied to `log` by a reader thread meanwhile and after."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def copy_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.write(line)
            if line.startswith("{") and '"serving"' in line:
                events.put(json.loads(line))
        log.flush()

    threading.Thread(target=copy_log, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return events.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                raise RuntimeError(f"wharf serve exited with {process.returncode}; see server.log") from None
    raise RuntimeError(f"wharf serve did not start within {timeout_s:.0f} s; see server.log")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def batch_histogram(metrics_url: str) -> tuple[float, float]:
    """(sum, count) of Wharf's `wharf_batch_size` histogram: rows and predict calls so far."""
    text = httpx.get(metrics_url, timeout=5.0).text
    found = dict(re.findall(rf'^wharf_batch_size_(sum|count){{model="{MODEL_NAME}"}} (\S+)$', text, re.MULTILINE))
    return float(found.get("sum", 0.0)), float(found.get("count", 0.0))


def check_answers(target: str, rows: np.ndarray, reference: np.ndarray, tolerance: float) -> tuple[bool, float]:
    """Each row sent as its own concurrent request (so batching merges and splits them); whether every answer is
    within `tolerance` of the reference (relative to its largest magnitude), and the largest relative error."""

    async def ask() -> list[np.ndarray]:
        async with InferenceClient(grpc_target=target, protocol="grpc-v2", timeout_s=60.0) as client:
            requests = [InferRequest([Tensor(INPUT_NAME, rows[i : i + 1])]) for i in range(len(rows))]
            answers = await asyncio.gather(*(client.infer(MODEL_NAME, request) for request in requests))
        return [answer.outputs[0].data for answer in answers]

    answers = np.concatenate(asyncio.run(ask())).astype(np.float32)
    scale = float(np.abs(reference).max()) or 1.0
    error = float(np.abs(answers - reference).max()) / scale if answers.shape == reference.shape else float("inf")
    return error <= tolerance, error


# ---- load: concurrent gRPC clients in client processes -----------------------------------------------------------
@dataclass(frozen=True)
class LoadJob:
    """What one client process does: `clients` concurrent request loops from `begin` to `end` (monotonic time),
    counting the answers that arrive after `window_start`."""

    target: str
    spec: InputSpec
    rows: int
    clients: int
    begin: float
    window_start: float
    end: float
    seed: int
    timeout_s: float = 30.0


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)


def run_load_job(job: LoadJob) -> LoadResult:
    """Entry point of a client process."""
    return asyncio.run(_drive(job))


async def _drive(job: LoadJob) -> LoadResult:
    result = LoadResult()
    requests = [InferRequest([Tensor(INPUT_NAME, job.spec.sample(job.rows, job.seed + i))]) for i in range(4)]
    async with InferenceClient(grpc_target=job.target, protocol="grpc-v2", timeout_s=job.timeout_s) as client:
        await client.ready(MODEL_NAME)  # the channel is connected before the clock starts
        await asyncio.sleep(max(0.0, job.begin - time.monotonic()))

        async def client_loop(index: int) -> None:
            while (sent := time.monotonic()) < job.end:
                try:
                    await client.infer(MODEL_NAME, requests[index % len(requests)])
                except WharfError as e:
                    result.errors += 1
                    result.first_error = result.first_error or e.message
                    await asyncio.sleep(0.01)
                    continue
                done = time.monotonic()
                if job.window_start <= done <= job.end:
                    result.requests += 1
                    result.latencies_ms.append((done - sent) * 1000)
                index += 1

        await asyncio.wait_for(
            asyncio.gather(*(client_loop(i) for i in range(job.clients))),
            timeout=job.end - time.monotonic() + job.timeout_s + 5,
        )
    return result


@dataclass
class Point:
    """One Wharf measurement: a runtime, a batching setting, a number of clients and rows per request."""

    runtime: str
    batching: str
    clients: int
    rows: int
    rows_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rows_per_call: float | None = None
    errors: int = 0
    first_error: str = ""
    vs_limit: float | None = None
    vs_host_limit: float | None = None
    check: str = ""
    note: str = ""


def measure_point(
    pool: Executor, procs: int, server: RunningServer, spec: InputSpec, point: Point, warmup_s: float,
    duration_s: float,
) -> None:  # fmt: skip
    """Drive the server with `point.clients` clients of `point.rows` rows each; fills in `point`."""
    begin = time.monotonic() + 1.0
    window_start, end = begin + warmup_s, begin + warmup_s + duration_s
    shares = [point.clients // procs + (i < point.clients % procs) for i in range(procs)]
    jobs = [
        LoadJob(server.grpc_target, spec, point.rows, n, begin, window_start, end, seed=1000 * i)
        for i, n in enumerate(shares)
        if n
    ]
    futures = [pool.submit(run_load_job, job) for job in jobs]
    time.sleep(max(0.0, window_start - time.monotonic()))
    before = batch_histogram(server.metrics_url)
    time.sleep(max(0.0, end - time.monotonic()))
    after = batch_histogram(server.metrics_url)
    results = [future.result(timeout=max(0.0, end - time.monotonic()) + 60) for future in futures]
    latencies = np.concatenate([np.asarray(r.latencies_ms) for r in results] or [np.empty(0)])
    point.rows_per_s = sum(r.requests for r in results) * point.rows / duration_s
    if latencies.size:
        point.p50_ms, point.p99_ms = (float(v) for v in np.percentile(latencies, [50, 99]))
    calls = after[1] - before[1]
    point.rows_per_call = (after[0] - before[0]) / calls if calls else None
    point.errors = sum(r.errors for r in results)
    point.first_error = next((r.first_error for r in results if r.first_error), "")


# ---- the run ----------------------------------------------------------------------------------------------------
@dataclass
class Clock:
    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()


class OutOfTime(Exception):
    """The last-resort alarm: the run went two minutes past --budget-s."""


@dataclass
class ModelReport:
    name: str
    description: str
    input: dict[str, Any]
    limits: dict[str, Limit] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    unmeasured: dict[str, str] = field(default_factory=dict)  # runtime -> why


def server_configs(best_batch: int, max_latency_ms: float) -> list[tuple[ServerConfig, list[tuple[int, int]]]]:
    """Each server setting and its (clients, rows per request) points: batching on at the limit's best batch size
    (at least 8 rows, so that 8-row requests fit), and off."""
    on = ServerConfig(max(best_batch, 8), max_latency_ms)
    return [(on, [(64, 1), (128, 1), (64, 8)]), (ServerConfig(1, max_latency_ms), [(64, 1)])]


@dataclass
class Runtime:
    """A served artifact, the answers it should give to the check rows, and its limit."""

    name: str
    artifact: Path
    reference: np.ndarray
    limit: Limit


def bench_model(name: str, args: argparse.Namespace, clock: Clock, pool: Callable[[], Executor], log: TextIO,
                save: Callable[[], None], report: ModelReport) -> None:  # fmt: skip
    """Everything for one model: artifacts, limits, then each runtime's Wharf servers and points."""
    spec = input_spec(name, args.dtype)
    check_rows = spec.sample(8, seed=99)
    with tempfile.TemporaryDirectory(prefix=f"wharf-gpu-{name}-") as folder:
        with_onnx = onnx_available(args.device)
        script, onnx_file = save_artifacts(name, spec, args.device, args.dtype, Path(folder), with_onnx)
        limit = torch_limit(script, spec, args.batch_sizes, args.device, args.limit_s)
        runtimes = [Runtime("pytorch", script, torch_reference(script, check_rows, args.device), limit)]
        if isinstance(onnx_file, Path):
            limit = onnx_limit(onnx_file, spec, args.batch_sizes, args.device, args.limit_s)
            reference = onnx_session(onnx_file, args.device).run(None, {INPUT_NAME: check_rows})[0]
            runtimes.append(Runtime("onnx", onnx_file, reference.astype(np.float32), limit))
        else:
            report.unmeasured["onnx"] = onnx_file
        report.limits = {runtime.name: runtime.limit for runtime in runtimes}
        save()
        for runtime in runtimes:
            for config, shapes in server_configs(runtime.limit.best_batch, args.max_latency_ms):
                points = [Point(runtime.name, config.label, clients, rows) for clients, rows in shapes]
                report.points += points
                serve_and_measure(runtime, config, points, spec, check_rows, args, clock, pool, log, save)


def serve_and_measure(runtime: Runtime, config: ServerConfig, points: list[Point], spec: InputSpec,
                      check_rows: np.ndarray, args: argparse.Namespace, clock: Clock, pool: Callable[[], Executor],
                      log: TextIO, save: Callable[[], None]) -> None:  # fmt: skip
    """One Wharf server with `config`: check its answers, then measure each of `points` while the budget lasts."""
    if clock.left() < SERVER_START_ESTIMATE_S + args.warmup_s + args.duration_s:
        _skip(points, "skipped: out of the time budget")
        return
    tolerance = 1e-3 if args.dtype == "fp32" else 5e-2
    try:
        with wharf_server(runtime.artifact, config, args.device, log, min(120.0, clock.left())) as server:
            ok, error = check_answers(server.grpc_target, check_rows, runtime.reference, tolerance)
            for point in points:
                point.check = f"{'ok' if ok else 'WRONG'} (max rel. error {error:.1e})"
                if clock.left() < args.warmup_s + args.duration_s + 10:
                    point.note = "skipped: out of the time budget"
                    continue
                measure_point(pool(), args.client_procs, server, spec, point, args.warmup_s, args.duration_s)
                point.vs_limit = point.rows_per_s / runtime.limit.best
                if runtime.limit.host_inclusive:
                    point.vs_host_limit = point.rows_per_s / runtime.limit.host_inclusive
                save()
    except OutOfTime:
        raise
    except Exception as e:  # a server or a point that fails is a result; the other points still run
        _skip([p for p in points if p.rows_per_s is None], f"failed: {type(e).__name__}: {e}")
    save()


def _skip(points: list[Point], why: str) -> None:
    for point in points:
        point.note = point.note or why


def onnx_available(device: str) -> bool:
    import onnxruntime

    return _ORT_PROVIDERS[device] in onnxruntime.get_available_providers()


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime
    import torch

    if args.device == "cuda":
        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return {
        "device": device_name,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "python": platform.python_version(),
        "dtype": args.dtype,
        "wharf_commit": _commit(),
        "command": f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} {sys.executable} {shlex.join(sys.argv)}",
        "settings": {
            "batch_sizes": args.batch_sizes, "limit_s": args.limit_s, "warmup_s": args.warmup_s,
            "duration_s": args.duration_s, "max_latency_ms": args.max_latency_ms, "client_procs": args.client_procs,
            "budget_s": args.budget_s,
        },
    }  # fmt: skip


def _commit() -> str:
    try:
        command = ["git", "rev-parse", "--short", "HEAD"]
        found = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() or "unknown"


# ---- output -----------------------------------------------------------------------------------------------------
def render(env: dict[str, Any], reports: list[ModelReport]) -> str:
    lines = [
        "# Wharf GPU serving benchmark (issue #5)",
        "",
        f"- device: {env['device']}; torch {env['torch']}; onnxruntime {env['onnxruntime']} "
        f"(providers: {', '.join(env['onnxruntime_providers'])}); Python {env['python']}; dtype {env['dtype']}; "
        f"Wharf at {env['wharf_commit']}",
        f"- command: `{env['command']}`",
        f"- Wharf: `wharf serve MODEL --max-batch-size N --max-latency-ms L`, gRPC ModelInfer with raw tensors, "
        f"{env['settings']['client_procs']} client processes, {env['settings']['warmup_s']:g} s warm-up then "
        f"{env['settings']['duration_s']:g} s per point",
    ]
    if "clients" in env:
        lines.append(f"- clients: {env['clients']}")
    for report in reports:
        lines += ["", f"## {report.name}: {report.description}", "", _limit_table(report), "", _wharf_table(report)]
        lines += ["", _target_line(report)]
    return "\n".join(lines) + "\n"


def _limit_table(report: ModelReport) -> str:
    if not report.limits:
        return "Limit: not measured."
    runtimes = list(report.limits)
    batches = list(report.limits[runtimes[0]].per_batch)
    rows = [
        "Limit: the same model called in a tight loop (PyTorch: inputs already on the device; ONNX: numpy in and out).",
        "",
        "| batch | " + " | ".join(f"{r} rows/s" for r in runtimes) + " |",
        "|---:|" + "---:|" * len(runtimes),
    ]
    for batch in batches:
        rows.append(f"| {batch} | " + " | ".join(_num(report.limits[r].per_batch.get(batch)) for r in runtimes) + " |")
    for r, limit in report.limits.items():
        rows.append(
            f"\n{r}: best batch {limit.best_batch}, {_num(limit.best)} rows/s; host-inclusive (numpy -> device -> "
            f"numpy) at that batch: {_num(limit.host_inclusive)} rows/s"
        )
    return "\n".join(rows)


def _wharf_table(report: ModelReport) -> str:
    rows = [
        "| runtime | batching | clients | rows/request | rows/s | vs limit | vs host-incl. limit | p50 ms | p99 ms "
        "| rows per predict call | errors | answers | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for p in report.points:
        rows.append(
            f"| {p.runtime} | {p.batching} | {p.clients} | {p.rows} | {_num(p.rows_per_s)} | {_pct(p.vs_limit)} "
            f"| {_pct(p.vs_host_limit)} | {_num(p.p50_ms, 2)} | {_num(p.p99_ms, 2)} | {_num(p.rows_per_call, 1)} "
            f"| {p.errors} | {p.check} | {(p.note + ' ' + p.first_error[:120]).strip()} |"
        )
    for runtime, why in report.unmeasured.items():
        rows.append(f"| {runtime} | | | | | | | | | | | | {why} |")
    return "\n".join(rows)


def _target_line(report: ModelReport) -> str:
    on = [p for p in report.points if p.batching != "off" and p.clients >= 64 and p.vs_limit is not None]
    if not on:
        return f"Target (≥{TARGET:.0%} of the limit with batching on at 64+ clients): not measured."
    best = max(on, key=lambda p: p.vs_limit or 0.0)
    verdict = "met" if (best.vs_limit or 0.0) >= TARGET else "not met"
    return (
        f"Target (≥{TARGET:.0%} of the limit with batching on at 64+ clients): {verdict}; best {_pct(best.vs_limit)} "
        f"({best.runtime}, {best.clients} clients x {best.rows} rows)."
    )


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def write_results(out: Path, env: dict[str, Any], reports: list[ModelReport]) -> str:
    table = render(env, reports)
    (out / "gpu_serving.md").write_text(table)
    document = {"environment": env, "models": [asdict(r) for r in reports]}
    (out / "gpu_serving.json").write_text(json.dumps(document, indent=2, default=str))
    return table


# ---- main -------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", help="comma-separated: resnet50, bert, tiny")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", choices=list(_TORCH_DTYPES), help="default: fp16 on cuda, fp32 on cpu")
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--batch-sizes", default="1,8,16,32,64,128", help="batch sizes of the limit")
    parser.add_argument("--limit-s", type=float, default=1.5, help="seconds per batch size of the limit")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="warm-up before each Wharf point")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per Wharf point")
    parser.add_argument("--max-latency-ms", type=float, default=2.0, help="Wharf's batch wait with batching on")
    parser.add_argument("--client-procs", type=int, default=min(8, max(1, (os.cpu_count() or 2) // 2)))
    parser.add_argument("--budget-s", type=float, default=360.0, help="the whole run stays within this")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.model.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.dtype = args.dtype or ("fp16" if args.device == "cuda" else "fp32")
    return args


def client_pool(procs: int, env: dict[str, Any]) -> Executor:
    """Client processes, spawned (they share nothing with CUDA, and never import torch); threads of this process
    where the machine cannot make the processes' queues (noted in `env`)."""
    try:
        return ProcessPoolExecutor(procs, mp_context=get_context("spawn"))
    except (OSError, ImportError) as e:
        env["clients"] = f"threads of the benchmark process: no client processes ({type(e).__name__}: {e})"
        return ThreadPoolExecutor(procs)


def fit_budget(args: argparse.Namespace) -> None:
    """Shorten the per-point duration so that every planned step fits in --budget-s (at least 2 s per point)."""
    runtimes = 2 if onnx_available(args.device) else 1
    per_model = 20 + len(args.batch_sizes) * (args.limit_s + 1) * runtimes + 2 * runtimes * SERVER_START_ESTIMATE_S
    points = len(args.models) * runtimes * 4
    spare = 0.9 * args.budget_s - len(args.models) * per_model
    args.duration_s = round(max(2.0, min(args.duration_s, spare / points - args.warmup_s - 2)), 1)


def main() -> None:
    args = parse_args()
    clock = Clock(time.monotonic() + args.budget_s)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
    fit_budget(args)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(args)
    reports: list[ModelReport] = []
    pools: list[Executor] = []

    def pool() -> Executor:
        if not pools:
            pools.append(client_pool(args.client_procs, env))
        return pools[0]

    def save() -> None:
        write_results(args.out, env, reports)

    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(args.budget_s) + 120)  # a last resort; the steps themselves keep to the budget
    try:
        with open(args.out / "server.log", "w") as log:
            for name in args.models:
                report = ModelReport(name, MODELS[name], asdict(input_spec(name, args.dtype)))
                reports.append(report)
                bench_model(name, args, clock, pool, log, save, report)
    finally:
        signal.alarm(0)
        for p in pools:
            p.shutdown(wait=False, cancel_futures=True)
        print(write_results(args.out, env, reports))


def _out_of_time(*_: Any) -> None:
    raise OutOfTime("the run went past --budget-s by two minutes")


if __name__ == "__main__":
    main()
