"""OpenAI's API as KServe's Hugging Face server answers it: request models, answers, stream chunks and errors.

Requests are parsed with orjson and validated by pydantic (a generation costs far more than its request's parsing).
A field OpenAI defines but Wharf does not support (`logprobs`, `tools`, ...) is refused with 400 naming it, never
ignored; `n` must be 1, and `frequency_penalty` and `presence_penalty` 0. Errors take OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`.

Streams are server-sent events, `data: {chunk}` each, ending with `data: [DONE]`; with `stream_options.include_usage`
every chunk carries `"usage": null` and a last chunk with no choices carries the usage.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wharf.errors import InvalidInput

SSE_DONE = b"data: [DONE]\n\n"
STOP_SEQUENCES = 4  # OpenAI's limit


class OpenAIError(InvalidInput):
    """A bad request (400 unless `status` says otherwise): `param` names the field, as OpenAI's error object does."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.code, self.http_status = param, code, status


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Generation(_Strict):
    """What completions and chat completions share."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError(f"only n=1 is supported (one choice per request), got {n}")
        return n

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("penalties are not supported; leave it 0")
        return value

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > STOP_SEQUENCES:
            raise ValueError(f"at most {STOP_SEQUENCES} stop sequences, got {len(stop)}")
        return stop

    @model_validator(mode="after")
    def _options_with_stream(self) -> _Generation:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed when stream is true")
        return self

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def token_limit(self) -> int | None:
        """The most new tokens asked for."""
        return self.max_tokens


class CompletionRequest(_Generation):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError(f"one prompt per request is supported, got {len(prompt)}")
        return prompt

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_template_input(self) -> dict[str, str]:
        """The message as chat templates take it (`developer` is OpenAI's newer name for `system`)."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class EmbeddingRequest(_Strict):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _some_text(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("at least one text")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


def parse(kind: type[BaseModel], body: bytes) -> Any:
    """The request `kind` in `body`; an `OpenAIError` naming the first bad field."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise OpenAIError(f"the body is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise OpenAIError("the body must be a JSON object")
    try:
        return kind.model_validate(document)
    except ValidationError as e:
        error = e.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        if error["type"] == "extra_forbidden":
            raise OpenAIError(f"unsupported field '{param}'", param) from None
        if error["type"] == "missing":
            raise OpenAIError(f"missing required field '{param}'", param) from None
        reason = error["msg"].removeprefix("Value error, ")
        raise OpenAIError(f"{param}: {reason}" if param else reason, param) from None


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    id: str, created: int, model: str, text: str, finish_reason: str | None, counts: dict[str, int] | None
) -> dict[str, Any]:
    """A completions answer, or (with `counts` None) one chunk of its stream."""
    choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
    answer = {"id": id, "object": "text_completion", "created": created, "model": model, "choices": [choice]}
    if counts is not None:
        answer["usage"] = counts
    return answer


def chat_completion(
    id: str, created: int, model: str, text: str, finish_reason: str, counts: dict[str, int]
) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": counts,
    }


def chat_chunk(id: str, created: int, model: str, delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    return {"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}


def usage_chunk(chunk: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """The last chunk of a stream asked to include usage: `chunk`'s identity, no choices."""
    return {**chunk, "choices": [], "usage": counts}


def sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def embeddings(model: str, vectors: np.ndarray, encoding: str, tokens: int) -> dict[str, Any]:
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(row.tobytes()).decode() if encoding == "base64" else row.tolist(),
        }
        for i, row in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def models(names: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": "wharf"} for name in names],
    }


def error(message: str, status: int, param: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error object for an answer of HTTP `status`."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
