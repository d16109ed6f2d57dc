"""The infer calls to the service: V2 `/v2/models/{model}/infer` or V1 `/v1/models/{model}:predict` under the
sink's URL and path prefix, with the gateway's Host header, each within `request_timeout_s`.

`Sink.call` sorts what came back: an answer (2xx, a JSON object), a refusal (`Refused`: any other 4xx, which
retrying cannot mend: dead-lettered with the server's `error`), or a failure worth retrying (`Retryable`: 5xx, 408,
429, a timeout, a refused or broken connection, an answer that is not JSON). `Sink.answer` retries the retryable
ones with exponential backoff (`retry_initial_s` doubling to `retry_max_s`, at most `max_retries` times; past them
the last failure is a `Refused` without a status, so its messages are dead-lettered rather than block the partition).

aiohttp's pooled client (keep-alive connections, as many as calls in flight): merged calls carry many messages
each, so its per-call cost (about 150 us of CPU) is spread over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from wharf.eventing.settings import ConsumerSettings

_RETRYABLE_4XX = frozenset({408, 425, 429})


class Refused(Exception):
    """The service refused the request (or retries ran out); `status` is its HTTP status, None if none came."""

    def __init__(self, reason: str, status: int | None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class Retryable(Exception):
    """A failure that may pass: 5xx, 408/429, timeout, connection error."""


class Sink:
    """One per consumer process; `close` when done."""

    def __init__(self, settings: ConsumerSettings, on_retry: Callable[[], None]) -> None:
        self.settings = settings
        self._on_retry = on_retry
        prefix = settings.sink_url + settings.sink_path_prefix
        self._paths = {
            "v2": f"{prefix}/v2/models/{settings.model}/infer",
            "v1": f"{prefix}/v1/models/{settings.model}:predict",
        }
        self._headers = {"content-type": "application/json"}
        if settings.sink_host:
            self._headers["host"] = settings.sink_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.max_in_flight * 2),
                timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s),
                json_serialize=lambda doc: orjson.dumps(doc).decode(),
                skip_auto_headers=("user-agent",),
            )
        return self._session

    async def call(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """The service's answer to one request, or `Refused` / `Retryable`."""
        try:
            async with self._client().post(self._paths[kind], data=orjson.dumps(body), headers=self._headers) as r:
                raw = await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Retryable(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
        if status >= 500 or status in _RETRYABLE_4XX:
            raise Retryable(f"{status}: {_error(raw)}")
        if status >= 400:
            raise Refused(_error(raw), status)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Retryable(f"{status} with a body that is not JSON") from None
        if not isinstance(doc, dict):
            raise Retryable(f"{status} with a body that is not a JSON object")
        return doc

    async def answer(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """`call`, retrying what may pass with backoff; `Refused` when it is refused or retries run out."""
        delay, tries = self.settings.retry_initial_s, 1
        while True:
            try:
                return await self.call(kind, body)
            except Retryable as e:
                if tries > self.settings.max_retries:
                    raise Refused(f"gave up after {tries} tries: {e}", None) from None
            self._on_retry()
            await asyncio.sleep(delay)
            delay, tries = min(delay * 2, self.settings.retry_max_s), tries + 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error(raw: bytes) -> str:
    """The server's `error` from its JSON body, else the start of the body."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:512].decode(errors="replace") or "no body"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"]
    return raw[:512].decode(errors="replace")
