"""`AsyncWharf`: Wharf's Python SDK, typed with the control plane's own spec models; `Wharf` is the same SDK for code
without an event loop (a script, a notebook).

Resources go through the control API (`AsyncControlClient`): apply, get, list, delete, wait until ready or deleted,
watch, and the rollout of an InferenceService (promote, roll back, set the canary's percent). Predictions and
explanations go through the gateway (`InferenceClient`, V1 or V2 REST) to a service by name, on the host its status
gives (`NAME.NAMESPACE.example.com`).

The daemon is found the way the `wharf` command finds it: `url` and `token` when given, else WHARF_CONTROL_URL and
WHARF_TOKEN, else the `daemon.json` that `wharf up` leaves in WHARF_HOME (`./.wharf`). The gateway is `gateway_url`
when given, else WHARF_GATEWAY_URL, else the one that `daemon.json` names, else http://127.0.0.1:8000.

Every call waits at most `timeout_s` for the control plane (`inference_timeout_s` for the gateway); waits and
watches take their own `timeout_s`. Errors are `wharf.errors` types carrying the server's message and status
(`NotFound`, `InvalidInput`, ...; `SpecError` naming each field of a bad manifest; `ServerUnreachable`,
`RequestTimeout`), and `NotReady` for a wait that ran out, with the Ready condition's message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import aclosing
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import numpy as np

from wharf.client.blocking import BlockingFace, blocking, blocking_iter
from wharf.client.control import AsyncControlClient, ControlError
from wharf.client.inference import InferenceClient
from wharf.sdk.errors import NotReady, typed
from wharf.sdk.following import Seen
from wharf.sdk.sources import Source, prepare
from wharf.sdk.views import M, Applied, Resource, WatchEvent, kind_name, resource
from wharf.control.spec import InferenceService
from wharf.errors import ModelNotReady, NotFound, RequestTimeout, WharfError
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
#: How long one watch stream lasts before `watch` reopens it: the longest a silently dead connection goes unnoticed.
WATCH_SEGMENT_S = 300.0
REOPEN_S = 1.0  # the least time between the starts of two watch streams
EXPIRED = 410  # a watch's ERROR when it fell too far behind the changes: list again
InferenceProtocol = Literal["v1", "v2"]
Outputs = np.ndarray | dict[str, np.ndarray]
T = TypeVar("T")
ISVC = InferenceService


class AsyncWharf:
    """Wharf's SDK for asyncio code; use it as an async context manager or `close` it."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        gateway_url: str | None = None,
        timeout_s: float = 30.0,
        inference_timeout_s: float = 60.0,
    ) -> None:
        self._control = AsyncControlClient(url, timeout_s, token)
        daemon = self._control.daemon
        self.gateway_url = (
            gateway_url
            or os.environ.get("WHARF_GATEWAY_URL")
            or (daemon.gateway_url if daemon else None)
            or DEFAULT_GATEWAY_URL
        )
        self.inference_timeout_s = inference_timeout_s
        self._inference: dict[str, InferenceClient] = {}
        self._hosts: dict[tuple[str, str], str] = {}

    @property
    def url(self) -> str:
        """The control API's URL."""
        return self._control.url

    async def close(self) -> None:
        """Close every connection (again: nothing more)."""
        clients, self._inference = list(self._inference.values()), {}
        for client in clients:
            await client.close()
        await self._control.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- resources ------------------------------------------------------------------------------------------------
    async def apply(self, source: Source, *, dry_run: bool = False) -> list[Applied]:
        """Create or update the resources of `source`: an `InferenceService` or `InferenceGraph` model, a manifest
        as a dict, YAML or JSON text (several documents), or a file's path. Checked here first (`SpecError` naming
        each field); relative paths are read from the file's directory, else the working directory. A `dry_run`
        says what would happen, changing nothing."""
        prepared = prepare(source)
        results = await self._call(self._control.apply(prepared.text, prepared.base, dry_run))
        return [Applied(r["kind"], r["namespace"], r["name"], r["result"], r.get("warnings", [])) for r in results]

    async def get(
        self,
        name: str,
        namespace: str = "default",
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
    ) -> Resource[M]:
        """The resource with its status; `NotFound` when there is none."""
        return resource(await self._call(self._control.get(kind_name(kind), name, namespace)), kind)

    async def list(
        self,
        namespace: str | None = "default",
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
    ) -> list[Resource[M]]:
        """The resources of `kind` in `namespace` (None: in every namespace)."""
        return [resource(doc, kind) for doc in await self._call(self._control.list(kind_name(kind), namespace))]

    async def delete(
        self,
        name: str,
        namespace: str = "default",
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
    ) -> None:
        """Delete the resource (its replicas stop; `wait_deleted` waits for it to be gone)."""
        await self._call(self._control.delete(kind_name(kind), name, namespace))
        self._hosts.pop((namespace, name), None)

    async def wait_ready(
        self,
        name: str,
        namespace: str = "default",
        timeout_s: float = 300.0,
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
    ) -> Resource[M]:
        """The resource once it is Ready for its current spec; `NotReady` (with the Ready condition's message)
        after `timeout_s`, `NotFound` if it is not there or goes."""
        label = f"{kind_name(kind)} {namespace}/{name}"
        last: Resource[M] | None = None
        async with aclosing(self._changes(kind, namespace, name, timeout_s)) as changes:
            async for change, document in changes:
                if change == "DELETED":
                    raise NotFound(f"{label} was deleted while waiting for it to be ready")
                if change == "BOOKMARK":
                    if last is None:
                        raise NotFound(f"{label} not found")
                    continue
                last = resource(document, kind)
                if last.ready:
                    return last
        raise NotReady(label, timeout_s, last)

    async def wait_deleted(
        self,
        name: str,
        namespace: str = "default",
        timeout_s: float = 60.0,
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
    ) -> None:
        """Return once the resource is gone (at once if it is not there); `RequestTimeout` after `timeout_s`."""
        seen = False
        async with aclosing(self._changes(kind, namespace, name, timeout_s)) as changes:
            async for change, _ in changes:
                if change == "DELETED" or (change == "BOOKMARK" and not seen):
                    return
                seen = True
        raise RequestTimeout(f"{kind_name(kind)} {namespace}/{name} was still there after {timeout_s:g} s")

    async def watch(
        self,
        namespace: str | None = "default",
        name: str | None = None,
        *,
        kind: type[M] = ISVC,  # type: ignore[assignment]
        timeout_s: float | None = None,
        segment_s: float = WATCH_SEGMENT_S,
    ) -> AsyncIterator[WatchEvent[M]]:
        """Each resource of `kind` (in `namespace`, None: every one; named `name`) there now as ADDED, then each
        change as it happens, for `timeout_s` (None: for as long as it is read). The stream is reopened every
        `segment_s` seconds (and when the control plane says it fell behind: 410 Expired), without showing anything
        twice. To stop reading early, close it, as any async generator
        (`async with contextlib.aclosing(wharf.watch()) as events: ...`); `Wharf.watch` closes itself."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        seen = Seen()
        opened = -REOPEN_S
        while (left := segment_s if deadline is None else min(deadline - loop.time(), segment_s)) > 0:
            if (pause := opened + REOPEN_S - loop.time()) > 0:  # a stream that ended early is not reopened at once
                await asyncio.sleep(min(pause, left))
                continue
            opened = loop.time()
            seen.opened()
            try:
                async with aclosing(self._changes(kind, namespace, name, left)) as changes:
                    async for change, document in changes:
                        for shown, shown_document in seen.saw(change, document):
                            yield WatchEvent(shown, resource(shown_document, kind))  # type: ignore[arg-type]
            except WharfError as e:
                if e.http_status != EXPIRED:
                    raise

    # -- rollouts -------------------------------------------------------------------------------------------------
    async def promote(self, name: str, namespace: str = "default") -> Resource[InferenceService]:
        """Send all of the InferenceService's traffic to its latest revisions (a rolled-back one included)."""
        return resource(await self._call(self._control.promote(name, namespace)), InferenceService)

    async def rollback(self, name: str, namespace: str = "default") -> Resource[InferenceService]:
        """Send all traffic back to the revisions rolled out before the latest ones."""
        return resource(await self._call(self._control.rollback(name, namespace)), InferenceService)

    async def set_canary(
        self, name: str, percent: int, namespace: str = "default", component: str = "predictor"
    ) -> Resource[InferenceService]:
        """Give the latest revision of `component` `percent` of its traffic (`canaryTrafficPercent`, by a merge
        patch: nothing else of the spec changes), the rest staying with the revision rolled out before it;
        `promote` ends the canary."""
        current = await self.get(name, namespace)
        if component not in current.manifest.components():
            raise NotFound(f"InferenceService {namespace}/{name} has no {component}")
        patch = {"spec": {component: {"canaryTrafficPercent": percent}}}
        patched = await self._call(self._control.patch("isvc", name, patch, namespace))
        return resource(patched, InferenceService)

    # -- inference ------------------------------------------------------------------------------------------------
    async def predict(
        self,
        name: str,
        data: Any,
        namespace: str = "default",
        *,
        protocol: InferenceProtocol = "v2",
        api_key: str | None = None,
    ) -> Outputs:
        """The InferenceService's prediction for `data` (an array, or arrays by input name, or an `InferRequest`)
        through the gateway, over `protocol`: one output as an array, several as arrays by name. `api_key` is for
        a service that asks for one."""
        answer = await self._inference_client(protocol).infer(
            name, _request(data), headers=await self._headers(name, namespace, api_key)
        )
        return _outputs(answer)

    async def explain(
        self,
        name: str,
        data: Any,
        namespace: str = "default",
        *,
        protocol: InferenceProtocol = "v2",
        api_key: str | None = None,
    ) -> Any:
        """The explanation of `data` by the InferenceService's explainer (or its model's own `explain`): over V2
        its tensors as arrays by name, over V1 the explainer's JSON."""
        client, request = self._inference_client(protocol), _request(data)
        headers = await self._headers(name, namespace, api_key)
        if protocol == "v1":
            return await client.explain(name, request, headers)
        answer = await client.explain_v2(name, request, headers=headers)
        return {t.name: t.data for t in answer.outputs}

    # -- plumbing -------------------------------------------------------------------------------------------------
    async def _call(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except ControlError as e:
            raise typed(e) from None

    async def _changes(
        self, kind: type[M], namespace: str | None, name: str | None, timeout_s: float
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The control API's watch, for at most `timeout_s`."""
        try:
            async with aclosing(self._control.watch(kind_name(kind), namespace, name, max(timeout_s, 0.001))) as stream:
                async for change in stream:
                    yield change
        except ControlError as e:
            raise typed(e) from None

    async def _headers(self, name: str, namespace: str, api_key: str | None) -> dict[str, str]:
        """The service's host (read from its status once), and its API key when given."""
        host = self._hosts.get((namespace, name))
        if host is None:
            url = (await self.get(name, namespace)).url
            if not url:
                raise ModelNotReady(f"InferenceService {namespace}/{name} has no URL yet")
            host = self._hosts[(namespace, name)] = urlsplit(url).netloc
        return {"host": host, **({"x-api-key": api_key} if api_key else {})}

    def _inference_client(self, protocol: InferenceProtocol) -> InferenceClient:
        client = self._inference.get(protocol)
        if client is None:
            client = InferenceClient(self.gateway_url, protocol=protocol, timeout_s=self.inference_timeout_s)
            self._inference[protocol] = client
        return client


def _request(data: Any) -> InferRequest:
    """`data` as a V2 request: an `InferRequest` as it is, arrays by name as inputs of those names, anything else
    as one input, `input-0`."""
    if isinstance(data, InferRequest):
        return data
    if isinstance(data, Mapping):
        return InferRequest([Tensor(str(key), np.asarray(value)) for key, value in data.items()])
    return InferRequest([Tensor("input-0", np.asarray(data))])


def _outputs(answer: InferResponse) -> Outputs:
    if len(answer.outputs) == 1:
        return answer.outputs[0].data
    return {t.name: t.data for t in answer.outputs}


class Wharf(BlockingFace[AsyncWharf]):
    """Wharf's SDK for code without an event loop (scripts, notebooks): `AsyncWharf`'s calls, each blocking until
    it is done (`watch` returns an iterator). One instance serves one thread at a time; use it as a context manager
    or `close` it."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        gateway_url: str | None = None,
        timeout_s: float = 30.0,
        inference_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(
            AsyncWharf(
                url, token, gateway_url=gateway_url, timeout_s=timeout_s, inference_timeout_s=inference_timeout_s
            )
        )

    @property
    def url(self) -> str:
        return self._async.url

    @property
    def gateway_url(self) -> str:
        return self._async.gateway_url

    apply = blocking(AsyncWharf.apply)
    get = blocking(AsyncWharf.get)
    list = blocking(AsyncWharf.list)
    delete = blocking(AsyncWharf.delete)
    wait_ready = blocking(AsyncWharf.wait_ready)
    wait_deleted = blocking(AsyncWharf.wait_deleted)
    watch = blocking_iter(AsyncWharf.watch)
    promote = blocking(AsyncWharf.promote)
    rollback = blocking(AsyncWharf.rollback)
    set_canary = blocking(AsyncWharf.set_canary)
    predict = blocking(AsyncWharf.predict)
    explain = blocking(AsyncWharf.explain)
