"""A streamed answer as one payload: the server-sent events of OpenAI's streaming API assembled into the answer the
same request gets unstreamed, so that a payload log (and whatever reads it: monitors, audits) sees the text the
client read, not a few hundred fragments of it.

The events' `data:` lines are read in order: chat completion chunks (`chat.completion.chunk`) become a
`chat.completion` whose messages are the concatenated deltas, completion chunks (`text_completion`) a
`text_completion` with the concatenated texts; each choice (by `index`) keeps its last `finish_reason`, the answer
its `usage` (the final usage chunk, when the request asked for one; else null) and the `error` a stream may end
with. A stream in no such shape (another kind of events, or data that is not JSON) is left as it came.

Cost: one JSON parse per event, made by the payload logger's sender (off the request's path), after the stream's
last byte went to the client.
"""

from __future__ import annotations

from typing import Any

import orjson

EVENT_STREAM = "text/event-stream"
_JSON = "application/json"
_DONE = b"[DONE]"
_ASSEMBLED = {"chat.completion.chunk": "chat.completion", "text_completion": "text_completion"}


def assembled(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The payload to log for an answer `body` of `content_type`: an OpenAI stream assembled (JSON), any other
    payload as it is."""
    if not content_type.startswith(EVENT_STREAM):
        return body, content_type
    answer = _assemble(body)
    return (body, content_type) if answer is None else (orjson.dumps(answer), _JSON)


def _assemble(body: bytes) -> dict[str, Any] | None:
    """The unstreamed answer the events of `body` add up to; None if they are not OpenAI's stream."""
    answer: dict[str, Any] | None = None
    texts: dict[int, list[str]] = {}
    choices: dict[int, dict[str, Any]] = {}
    for data in _data(body):
        if data == _DONE:
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict):
            return None
        if "error" in event:
            answer = answer or {}
            answer["error"] = event["error"]
            continue
        kind = _ASSEMBLED.get(event.get("object", ""))
        if kind is None:
            return None
        if answer is None or "object" not in answer:
            head = {"id": event.get("id"), "object": kind, "created": event.get("created"), "model": event.get("model")}
            answer = head | (answer or {})
        for choice in event.get("choices") or ():
            index = choice.get("index", 0)
            kept = choices.setdefault(index, {"index": index, "finish_reason": None})
            delta = choice.get("delta") if kind == "chat.completion" else None
            text = (delta or {}).get("content") if kind == "chat.completion" else choice.get("text")
            if text:
                texts.setdefault(index, []).append(text)
            if delta and delta.get("role"):
                kept["role"] = delta["role"]
            if choice.get("finish_reason") is not None:
                kept["finish_reason"] = choice["finish_reason"]
        if event.get("usage") is not None:
            answer["usage"] = event["usage"]
    if answer is None:
        return None
    if "object" in answer:
        answer["choices"] = [
            _choice(answer["object"], kept, "".join(texts.get(i, ()))) for i, kept in sorted(choices.items())
        ]
        answer.setdefault("usage", None)
    return answer


def _choice(kind: str, kept: dict[str, Any], text: str) -> dict[str, Any]:
    if kind == "chat.completion":
        message = {"role": kept.get("role", "assistant"), "content": text}
        return {"index": kept["index"], "message": message, "finish_reason": kept["finish_reason"]}
    return {"index": kept["index"], "text": text, "finish_reason": kept["finish_reason"]}


def _data(body: bytes) -> list[bytes]:
    """The data of each event of `body`, in order (an event's `data:` lines joined by newlines, as the
    server-sent events standard reads them; other fields and comments skipped)."""
    events: list[bytes] = []
    lines: list[bytes] = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            if lines:
                events.append(b"\n".join(lines))
                lines = []
        elif line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    if lines:
        events.append(b"\n".join(lines))
    return events
