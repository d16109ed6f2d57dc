"""OpenAI request parsing and answers: fields validated and named, n=1 only, unknown fields refused, shapes."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from wharf.protocol import openai
from wharf.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, OpenAIError, parse


def _body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_a_chat_request_with_every_supported_field() -> None:
    request = parse(
        ChatCompletionRequest,
        _body(
            model="m",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            max_completion_tokens=5,
            max_tokens=9,
            temperature=0,
            top_p=0.5,
            seed=7,
            stop="\n",
            stream=True,
            stream_options={"include_usage": True},
        ),
    )
    assert request.token_limit == 5  # max_completion_tokens wins over the older max_tokens
    assert request.stops == ("\n",) and request.include_usage and request.seed == 7
    assert [m.as_template_input() for m in request.messages] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_completion_defaults_and_one_prompt() -> None:
    request = parse(CompletionRequest, _body(model="m", prompt=["once upon"]))
    assert request.text == "once upon" and request.token_limit is None
    assert request.temperature == 1.0 and request.top_p == 1.0 and request.stops == ()
    assert not request.stream and not request.include_usage


@pytest.mark.parametrize(
    ("kind", "fields", "param", "message"),
    [
        (ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n", "n=1"),
        (ChatCompletionRequest, {"model": "m", "messages": []}, "messages", "at least 1"),
        (ChatCompletionRequest, {"model": "m"}, "messages", "missing required field 'messages'"),
        (ChatCompletionRequest, {"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", ""),
        (CompletionRequest, {"model": "m", "prompt": "x", "logprobs": 3}, "logprobs", "unsupported field 'logprobs'"),
        (CompletionRequest, {"model": "m", "prompt": "x", "temperature": 3}, "temperature", "less than or equal to 2"),
        (CompletionRequest, {"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens", "greater than or equal"),
        (CompletionRequest, {"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        (CompletionRequest, {"model": "m", "prompt": ["a", "b"]}, "prompt", "one prompt per request"),
        (CompletionRequest, {"model": "m", "prompt": "x", "presence_penalty": 1}, "presence_penalty", "not supported"),
        (CompletionRequest, {"model": "m", "prompt": "x", "stream_options": {"include_usage": True}}, None, "stream"),
        (EmbeddingRequest, {"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format", "'float'"),
        (EmbeddingRequest, {"model": "m", "input": []}, "input", "at least one text"),
    ],
)
def test_bad_fields_are_named(kind: type, fields: dict, param: str | None, message: str) -> None:
    with pytest.raises(OpenAIError) as raised:
        parse(kind, orjson.dumps(fields))
    assert raised.value.param == param and raised.value.http_status == 400
    assert message in raised.value.message


def test_a_body_that_is_not_a_json_object() -> None:
    for body in (b"{", b"[1]"):
        with pytest.raises(OpenAIError, match="JSON"):
            parse(CompletionRequest, body)


def test_embeddings_as_floats_and_base64() -> None:
    vectors = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    floats = openai.embeddings("m", vectors, "float", 6)
    assert [d["embedding"] for d in floats["data"]] == [[0.5, -1.0], [2.0, 0.25]]
    assert floats["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    encoded = openai.embeddings("m", vectors, "base64", 6)["data"][1]["embedding"]
    assert np.frombuffer(base64.b64decode(encoded), dtype="<f4").tolist() == [2.0, 0.25]


def test_error_object_and_stream_framing() -> None:
    body = orjson.loads(openai.error("too long", 400, "messages", "context_length_exceeded"))
    assert body == {
        "error": {
            "message": "too long",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    chunk = openai.chat_chunk("id", 1, "m", {"content": "hi"}, None)
    assert openai.sse(chunk) == b"data: " + orjson.dumps(chunk) + b"\n\n"
    assert openai.usage_chunk(chunk, openai.usage(3, 2))["choices"] == []
    assert openai.usage(3, 2)["total_tokens"] == 5
