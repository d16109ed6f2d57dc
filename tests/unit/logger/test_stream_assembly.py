"""A streamed OpenAI answer is logged as the answer its events add up to; other payloads as they are."""

from __future__ import annotations

import orjson

from wharf.logger import LogTarget, PayloadEvent
from wharf.logger.streams import assembled
from wharf.protocol import openai

SSE = "text/event-stream; charset=utf-8"


def _events(*chunks: dict, done: bool = True) -> bytes:  # type: ignore[type-arg]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + (b"data: [DONE]\n\n" if done else b"")


def _chat(delta: dict, finish: str | None = None, index: int = 0, usage: dict | None = None) -> dict:  # type: ignore[type-arg]
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "smol"}
    return chunk | {"choices": [{"index": index, "delta": delta, "finish_reason": finish}], "usage": usage}


def test_chat_deltas_become_one_message_with_its_finish_reason_and_usage() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    usage_chunk = _chat({}) | {"choices": [], "usage": usage}
    stream = _events(
        _chat({"role": "assistant", "content": ""}),
        _chat({"content": "Par"}),
        _chat({"content": "is."}),
        _chat({}, "stop"),
        usage_chunk,
    )
    body, content_type = assembled(stream, SSE)
    assert content_type == "application/json"
    assert orjson.loads(body) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "smol",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": usage,
    }


def test_completion_texts_are_joined_per_choice_and_crlf_and_multiline_data_are_read() -> None:
    base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "smol"}
    chunks = [
        base | {"choices": [{"index": 1, "text": "b", "finish_reason": None}]},
        base | {"choices": [{"index": 0, "text": "a", "finish_reason": None}]},
        base | {"choices": [{"index": 0, "text": "a", "finish_reason": "length"}]},
    ]
    stream = b"".join(b": comment\r\ndata: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)
    answer = orjson.loads(assembled(stream, SSE)[0])
    assert [(c["index"], c["text"], c["finish_reason"]) for c in answer["choices"]] == [
        (0, "aa", "length"),
        (1, "b", None),
    ]
    assert answer["usage"] is None  # the request asked for none
    split = b'data: {"object": "text_completion",\ndata: "choices": [{"index": 0, "text": "x"}]}\n\n'
    assert orjson.loads(assembled(split, SSE)[0])["choices"][0]["text"] == "x"


def test_a_stream_cut_short_keeps_what_came_and_an_error_event_is_kept() -> None:
    error = {"error": {"message": "the model failed", "type": "server_error", "code": 500}}
    answer = orjson.loads(assembled(_events(_chat({"content": "Pa"}), error, done=False), SSE)[0])
    assert answer["choices"][0]["message"]["content"] == "Pa" and answer["choices"][0]["finish_reason"] is None
    assert answer["error"] == error["error"]


def test_other_payloads_and_other_event_streams_are_logged_as_they_came() -> None:
    assert assembled(b'{"a":1}', "application/json") == (b'{"a":1}', "application/json")
    for stream in (b"data: not json\n\n", b'data: {"object": "other"}\n\n', b"data: [1]\n\n", b"event: ping\n\n"):
        assert assembled(stream, SSE) == (stream, SSE)


def test_wharfs_own_stream_assembles_into_the_event_the_logger_posts() -> None:
    """The model server's chunks (wharf.protocol.openai) as the gateway hands them over, in a response event."""
    chunks = [openai.chat_chunk("c", 1, "smol", {"content": piece}, None) for piece in ("The capital", " is Paris.")]
    stream = b"".join(openai.sse(c) for c in [*chunks, openai.chat_chunk("c", 1, "smol", {}, "length")])
    target = LogTarget("http://sink", "all", "chat", "default", "predictor", "chat-1", "http://chat")
    headers, body = PayloadEvent(target, "r1", stream + openai.SSE_DONE, SSE, {}, 200).to_http()
    assert headers["content-type"] == "application/json" and headers["ce-statuscode"] == "200"
    choice = orjson.loads(body)["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "The capital is Paris."},
        "finish_reason": "length",
    }
