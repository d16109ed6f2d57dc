"""OpenAI's API on the model server, at KServe's paths: an ASGI application the REST app hands `/openai/` to.

- `POST /openai/v1/chat/completions`, `POST /openai/v1/completions`: a text-generation model (its `generator`),
  answered whole with usage, or streamed as server-sent events (see `wharf.protocol.openai`).
- `POST /openai/v1/embeddings`: a feature-extraction model (its `embedder`), floats or base64.
- `GET /openai/v1/models`: every model of the repository.

KServe's server also answers these at `/v1/...`; Wharf does not, as `/v1/models` is KServe V1's model list there.
Errors take OpenAI's shape, mapped here in one place (`_error`): 400 for a bad field (named in `param`) or a prompt
over the context (`context_length_exceeded`, naming both lengths), 404 `model_not_found`. An error after a stream
has started is sent as a last `data: {"error": ...}` event.

The client going away (an `http.disconnect`, watched while the answer is made) cancels the generation at once: the
engine drops the sequence before its next step. Prompts are tokenized (chat template included) and embeddings
computed in worker threads, never on the event loop. Each request counts in the server's request metrics under
protocol `openai`, and in the generation metrics (`openai_metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from wharf.embedded_http import read_body
from wharf.errors import MethodNotAllowed, ModelNotFound, NotFound, WharfError
from wharf.model.base import Model
from wharf.model.generation.generator import PromptTooLong, TextGenerator
from wharf.model.generation.params import SamplingParams
from wharf.model.repository import NotLoaded
from wharf.protocol import openai
from wharf.server.dataplane import DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.server.openai_metrics import GenerationMetrics

if TYPE_CHECKING:  # the engine imports torch, which a server of other models never loads
    from wharf.model.generation.engine import Generation

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
PREFIX = "/openai/v1/"
_JSON = [(b"content-type", b"application/json")]
_EVENTS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
PROTOCOL = "openai"


class OpenAIApp:
    """The OpenAI endpoints over the server's data plane."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: ServerMetrics,
        generation: GenerationMetrics,
        max_request_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self.dataplane, self.metrics, self.generation = dataplane, metrics, generation
        self.max_request_bytes, self.body_timeout_s = max_request_bytes, body_timeout_s
        self.created = int(time.time())

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        exchange = _Exchange(receive, send)
        try:
            await self._route(scope, exchange)
        except WharfError as e:
            await exchange.fail(e)
        except Exception as e:  # a fault of the server itself, not of the request
            log.exception("unhandled error", extra={"path": scope["path"]})
            await exchange.fail(WharfError(f"internal error: {type(e).__name__}: {e}"))

    async def _route(self, scope: dict[str, Any], exchange: _Exchange) -> None:
        path, method = scope["path"], scope["method"]
        endpoint = path[len(PREFIX) :] if path.startswith(PREFIX) else None
        if endpoint == "models":
            _expect(method, "GET")
            return await exchange.reply(orjson.dumps(openai.models(self.dataplane.model_names(), self.created)))
        if endpoint not in ("chat/completions", "completions", "embeddings"):
            raise NotFound(
                f"no endpoint {path!r}; OpenAI's API is at {PREFIX}{{chat/completions,completions,embeddings,models}}"
            )
        _expect(method, "POST")
        body = await read_body(exchange.receive, self.max_request_bytes, self.body_timeout_s)
        if endpoint == "embeddings":
            request = openai.parse(openai.EmbeddingRequest, body)
            model = await self._model(request.model)
            return await self.metrics.measured(model.name, PROTOCOL, self._embed(model, request, exchange))
        chat = endpoint == "chat/completions"
        request = openai.parse(openai.ChatCompletionRequest if chat else openai.CompletionRequest, body)
        model = await self._model(request.model)
        await self.metrics.measured(model.name, PROTOCOL, self._complete(model, request, chat, exchange))

    async def _model(self, name: str) -> Model:
        try:
            return self.dataplane.model(name)
        except ModelNotFound:
            raise openai.OpenAIError(f"the model '{name}' does not exist", "model", "model_not_found", 404) from None
        except NotLoaded:
            return await self.dataplane.loaded(name)

    async def _embed(self, model: Model, request: openai.EmbeddingRequest, exchange: _Exchange) -> None:
        embedder = getattr(model, "embedder", None)
        if embedder is None:
            raise openai.OpenAIError(f"the model '{model.name}' does not make embeddings", "model")
        vectors, tokens = await asyncio.to_thread(embedder.embed, request.texts)
        self.generation.embedded(model.name, tokens)
        answer = openai.embeddings(model.name, vectors, request.encoding_format, tokens)
        await exchange.reply(orjson.dumps(answer))

    async def _complete(self, model: Model, request: Any, chat: bool, exchange: _Exchange) -> None:
        generator: TextGenerator | None = getattr(model, "generator", None)
        if generator is None:
            raise openai.OpenAIError(f"the model '{model.name}' does not generate text", "model")
        arrived = time.perf_counter()
        if chat:
            prompt = await asyncio.to_thread(generator.chat_ids, [m.as_template_input() for m in request.messages])
        else:
            prompt = await asyncio.to_thread(generator.text_ids, request.text)
        limit = request.token_limit
        params = SamplingParams(
            max_tokens=limit or generator.max_model_len,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop=request.stops,
        )
        try:
            generation = generator.generate(prompt, params, limit is not None)
        except PromptTooLong as e:
            raise openai.OpenAIError(e.message, "messages" if chat else "prompt", "context_length_exceeded") from None
        answer = _Answer(model.name, chat, request.include_usage)
        pieces = self._timed(model.name, generation, arrived)
        make = (
            self._stream(answer, generation, pieces, exchange)
            if request.stream
            else self._whole(answer, generation, pieces, exchange)
        )
        await exchange.until_gone(make, generation)

    async def _timed(self, model: str, generation: Generation, arrived: float) -> AsyncIterator[str]:
        """The generation's text pieces, observing time to first token and between pieces."""
        first, between = self.generation.first_token.labels(model), self.generation.inter_token.labels(model)
        last = None
        async for delta in generation:
            now = time.perf_counter()
            if last is None:
                first.observe(now - arrived)
            else:
                between.observe(now - last)
            last = now
            yield delta.text

    async def _whole(
        self, answer: _Answer, generation: Generation, pieces: AsyncIterator[str], exchange: _Exchange
    ) -> None:
        text = "".join([piece async for piece in pieces])
        await exchange.reply(orjson.dumps(answer.whole(text, generation)))

    async def _stream(
        self, answer: _Answer, generation: Generation, pieces: AsyncIterator[str], exchange: _Exchange
    ) -> None:
        await exchange.start(200, _EVENTS)
        if answer.chat:
            await exchange.event(openai.sse(answer.chunk({"role": "assistant", "content": ""}, None)))
        async for piece in pieces:
            await exchange.event(openai.sse(answer.chunk(piece, None)))
        done = generation.done
        await exchange.event(openai.sse(answer.chunk("", done.finish_reason)))
        if answer.include_usage:
            counts = openai.usage(done.prompt_tokens, done.completion_tokens)
            await exchange.event(openai.sse(openai.usage_chunk(answer.chunk("", None), counts)))
        await exchange.event(openai.SSE_DONE)
        await exchange.end()


class _Answer:
    """What every chunk or answer of one generation request repeats: its id, time, model and kind."""

    def __init__(self, model: str, chat: bool, include_usage: bool) -> None:
        self.model, self.chat, self.include_usage = model, chat, include_usage
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def chunk(self, content: str | dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        if self.chat:
            delta = content if isinstance(content, dict) else ({"content": content} if content else {})
            chunk = openai.chat_chunk(self.id, self.created, self.model, delta, finish_reason)
        else:
            chunk = openai.completion(self.id, self.created, self.model, content, finish_reason, None)
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def whole(self, text: str, generation: Generation) -> dict[str, Any]:
        done = generation.done
        counts = openai.usage(done.prompt_tokens, done.completion_tokens)
        if self.chat:
            return openai.chat_completion(self.id, self.created, self.model, text, done.finish_reason, counts)
        return openai.completion(self.id, self.created, self.model, text, done.finish_reason, counts)


class _Exchange:
    """One HTTP exchange: a whole answer, or a stream of events; errors in OpenAI's shape either way."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive, self.send = receive, send
        self.started = False

    async def reply(self, body: bytes, status: int = 200) -> None:
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        self.started = True

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = True

    async def event(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b""})

    async def fail(self, error: WharfError) -> None:
        body = _error(error)
        if not self.started:
            return await self.reply(body, error.http_status)
        await self.event(b"data: " + body + b"\n\n")  # the stream has begun: its status is sent already
        await self.end()

    async def until_gone(self, answer: Awaitable[None], generation: Generation) -> None:
        """Make the `answer`, unless the client goes away first: then cancel it and its generation."""
        making = asyncio.ensure_future(answer)
        gone = asyncio.ensure_future(self._disconnected())
        try:
            await asyncio.wait((making, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not making.done():
                making.cancel()
            generation.cancel()  # nothing if it has ended
            gone.cancel()
        if making.done() and not making.cancelled():
            making.result()

    async def _disconnected(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass


def _error(error: WharfError) -> bytes:
    """OpenAI's error object for `error` (the one place errors are mapped here)."""
    if isinstance(error, openai.OpenAIError):
        return openai.error(error.message, error.http_status, error.param, error.code)
    if isinstance(error, ModelNotFound):
        return openai.error(error.message, error.http_status, "model", "model_not_found")
    return openai.error(error.message, error.http_status)


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise MethodNotAllowed(f"{method} is not allowed here; use {allowed}", allowed)
