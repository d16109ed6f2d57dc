"""`AsyncControlClient`: the control plane's REST API; `ControlClient` is the same client for code without an event
loop (what `wharf apply/get/wait/logs/delete/rollout` use), and `wharf.sdk` builds on it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from wharf.client.blocking import BlockingFace, blocking, blocking_iter

DEFAULT_URL = "http://127.0.0.1:8002"
_STREAM_MARGIN_S = 10.0
DEFAULT_HOME = Path(".wharf")
PLURALS = {
    "inferenceservice": "inferenceservices",
    "inferenceservices": "inferenceservices",
    "isvc": "inferenceservices",
    "inferencegraph": "inferencegraphs",
    "inferencegraphs": "inferencegraphs",
    "ig": "inferencegraphs",
    "batchjob": "batchjobs",
    "batchjobs": "batchjobs",
    "bj": "batchjobs",
    "kafkasource": "kafkasources",
    "kafkasources": "kafkasources",
    "trainedmodel": "trainedmodels",
    "trainedmodels": "trainedmodels",
    "tm": "trainedmodels",
}
_GROUPS = {
    "inferenceservices": "serving.kserve.io/v1beta1",
    "inferencegraphs": "serving.kserve.io/v1alpha1",
    "batchjobs": "wharf.dev/v1alpha1",
    "kafkasources": "sources.knative.dev/v1beta1",
    "trainedmodels": "serving.kserve.io/v1alpha1",
}


class ControlError(Exception):
    """The control plane refused a call (`status`, and the decoded `body` of its answer when it was JSON), or could
    not be reached (`status` None; `timed_out` when it was reached but did not answer in time)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.timed_out = timed_out


def plural(kind: str) -> str:
    """The resource collection for a kind or its short name (`isvc`, `ig`)."""
    try:
        return PLURALS[kind.lower()]
    except KeyError:
        raise ControlError(f"unknown resource kind {kind!r}; use isvc, ig, bj, kafkasource or tm") from None


@dataclass(frozen=True, slots=True)
class DaemonAddress:
    """What `wharf up` leaves in its WHARF_HOME for clients (`daemon.json`, readable by its user only): where its
    APIs listen and the admin token, as a kubeconfig tells kubectl where its cluster is."""

    control_url: str
    gateway_url: str
    gateway_grpc: str
    token: str
    monitor_url: str | None = None  # the model monitor, when `wharf up` runs one

    FILE = "daemon.json"

    @classmethod
    def read(cls, home: Path) -> DaemonAddress | None:
        try:
            return cls(**json.loads((home / cls.FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def home_from_env() -> Path:
    """The WHARF_HOME a command run here means: the variable, else `./.wharf` (as `wharf up` takes it)."""
    return Path(os.environ.get("WHARF_HOME") or DEFAULT_HOME)


class AsyncControlClient:
    """The control API. Without `url`, the client finds its daemon the way kubectl finds its cluster:
    WHARF_CONTROL_URL, else the `daemon.json` of WHARF_HOME, else the default address; the token likewise comes
    from `token`, WHARF_TOKEN or that file."""

    def __init__(self, url: str | None = None, timeout_s: float = 30.0, token: str | None = None) -> None:
        address = DaemonAddress.read(home_from_env())
        url = url or os.environ.get("WHARF_CONTROL_URL") or (address.control_url if address else DEFAULT_URL)
        #: the home's `wharf up` when `url` is its control API (where its gateway listens), else None
        self.daemon = address if address and url.rstrip("/") == address.control_url.rstrip("/") else None
        # The home's token goes only to the home's daemon: never to another URL the caller points at.
        token = token or os.environ.get("WHARF_TOKEN") or (self.daemon.token if self.daemon else None)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout_s, headers=headers)

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncControlClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def apply(
        self, manifests: str, base: str | os.PathLike[str] | None = None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Apply one or more YAML (or JSON) documents; returns what happened to each resource (`kind`,
        `namespace`, `name`, `result` and the `warnings` about fields with no effect there). `base` is the
        directory relative paths in the manifests are read from (the file's); without it, the daemon's. A
        `dry_run` checks everything and says what would happen, changing nothing."""
        params = {} if base is None else {"base": os.path.abspath(base)}
        answer = await self._call(
            "POST",
            "/apis/apply",
            content=manifests.encode(),
            headers={"content-type": "application/yaml"},
            params={**params, "dryRun": "All"} if dry_run else params,
        )
        return answer["results"]

    async def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The resources of `kind` in `namespace` (None: in every namespace)."""
        return (await self._call("GET", self._collection(kind, namespace)))["items"]

    async def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self._call("GET", self._path(kind, name, namespace))

    async def watch(
        self,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(`ADDED`|`MODIFIED`|`DELETED`, resource) for each resource of `kind` (in `namespace`, None: every one;
        named `name`) there now, then `("BOOKMARK", {})`, then one for each change (and a `BOOKMARK` now and then),
        until the control plane ends the stream: after `timeout_s` (None: when it stops). An `ERROR` event (a
        Kubernetes Status: 410 when the watch fell too far behind) is raised as a ControlError."""
        params = {"watch": "true", "allowWatchBookmarks": "true"}
        if name is not None:
            params["fieldSelector"] = f"metadata.name={name}"
        if timeout_s is not None:
            params["timeoutSeconds"] = f"{max(timeout_s, 0.001):.3f}"
        read_timeout = None if timeout_s is None else timeout_s + _STREAM_MARGIN_S  # should the server not end it
        async with self._stream("GET", self._collection(kind, namespace), params, read_timeout) as answer:
            async with aclosing(answer.aiter_lines()) as lines:  # closed here when the reader stops, not later
                async for line in lines:
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        error = event.get("object") or {}
                        raise ControlError(error.get("message") or line, error.get("code"), error)
                    yield event["type"], {} if event["type"] == "BOOKMARK" else event["object"]

    async def events(self, kind: str, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        """The resource's recent events, oldest first (`type`, `reason`, `message`, `count`, `firstTimestamp`,
        `lastTimestamp`)."""
        return (await self._call("GET", self._path(kind, name, namespace) + "/events"))["items"]

    async def logs(
        self,
        name: str,
        namespace: str = "default",
        component: str = "predictor",
        revision: str | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[bytes]:
        """The logs of an InferenceService's replicas (of `component`'s `revision`, by default its latest): the last
        `tail` lines of each (None: all), then with `follow` what they write next, for as long as this is read."""
        params: dict[str, Any] = {"component": component, "follow": "true" if follow else "false"}
        if revision is not None:
            params["revision"] = revision
        if tail is not None:
            params["tailLines"] = tail
        async with self._stream("GET", self._path("isvc", name, namespace) + "/log", params, None) as answer:
            async with aclosing(answer.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        await self._call("DELETE", self._path(kind, name, namespace))

    async def patch(self, kind: str, name: str, patch: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        """Change the resource by a JSON merge patch (RFC 7386: the fields given replace those there, a null removes
        one); the resource as patched."""
        content = json.dumps(patch).encode()
        headers = {"content-type": "application/merge-patch+json"}
        return await self._call("PATCH", self._path(kind, name, namespace), content=content, headers=headers)

    async def promote(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self._call("POST", self._path("isvc", name, namespace) + "/promote")

    async def rollback(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self._call("POST", self._path("isvc", name, namespace) + "/rollback")

    async def bandit(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """The figures of an InferenceGraph's Bandit nodes: per arm its pulls, rewards, mean reward, share of the
        traffic and chance of the next request (`wharf.control.bandit_view`)."""
        return await self._call("GET", f"/apis/wharf.dev/v1/namespaces/{namespace}/inferencegraphs/{name}/bandit")

    async def top(self, namespace: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """What each revision (of `namespace`'s InferenceServices, None: of every namespace; of the one named
        `name`) and each of its replicas use now: CPU, resident memory, requests in flight and waiting."""
        return (await self._call("GET", "/apis/wharf.dev/v1/usage/top", params=_given(namespace=namespace, name=name)))[
            "items"
        ]

    async def cost(
        self, since_s: float = 3600.0, namespace: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The cost report of the last `since_s` seconds: per service and revision, its usage, figures, and verdict
        (over-scaled, under-scaled, fits, unjudged) with the recommendation and the numbers behind it."""
        params = {"since": since_s, **_given(namespace=namespace, name=name)}
        return await self._call("GET", "/apis/wharf.dev/v1/usage/cost", params=params)

    def _collection(self, kind: str, namespace: str | None) -> str:
        collection = plural(kind)
        scope = f"namespaces/{namespace}/" if namespace else ""
        return f"/apis/{_GROUPS[collection]}/{scope}{collection}"

    def _path(self, kind: str, name: str, namespace: str) -> str:
        collection = plural(kind)
        return f"/apis/{_GROUPS[collection]}/namespaces/{namespace}/{collection}/{name}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        _raise_for_error(answer)
        try:
            return answer.json() if answer.content else None
        except ValueError:
            raise ControlError(f"malformed answer from {answer.url}: not JSON", answer.status_code) from None

    @asynccontextmanager
    async def _stream(
        self, method: str, path: str, params: dict[str, Any], timeout_s: float | None
    ) -> AsyncIterator[httpx.Response]:
        """A streamed answer; ControlError for an error answer, or once nothing came for `timeout_s`."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=timeout_s)
        try:
            async with self._http.stream(method, path, params=params, timeout=timeout) as answer:
                if answer.status_code >= 400:
                    await answer.aread()
                    _raise_for_error(answer)
                yield answer
        except httpx.ReadTimeout:
            raise ControlError(f"nothing came from the control plane within {timeout_s:g} s", timed_out=True) from None
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None

    def _unreachable(self, error: httpx.HTTPError) -> ControlError:
        if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
            return ControlError(f"no answer from the Wharf control plane at {self._http.base_url}", timed_out=True)
        return ControlError(f"cannot reach the Wharf control plane at {self._http.base_url}: {error}")


class ControlClient(BlockingFace[AsyncControlClient]):
    """`AsyncControlClient` for code without an event loop: the same arguments, calls and errors, each call blocking
    until its answer (`watch` and `logs` return iterators)."""

    def __init__(self, url: str | None = None, timeout_s: float = 30.0, token: str | None = None) -> None:
        super().__init__(AsyncControlClient(url, timeout_s, token))

    @property
    def url(self) -> str:
        return self._async.url

    apply = blocking(AsyncControlClient.apply)
    list = blocking(AsyncControlClient.list)
    get = blocking(AsyncControlClient.get)
    watch = blocking_iter(AsyncControlClient.watch)
    events = blocking(AsyncControlClient.events)
    logs = blocking_iter(AsyncControlClient.logs)
    delete = blocking(AsyncControlClient.delete)
    patch = blocking(AsyncControlClient.patch)
    promote = blocking(AsyncControlClient.promote)
    rollback = blocking(AsyncControlClient.rollback)
    bandit = blocking(AsyncControlClient.bandit)
    top = blocking(AsyncControlClient.top)
    cost = blocking(AsyncControlClient.cost)


def _given(**params: str | None) -> dict[str, str]:
    """The query parameters that have a value."""
    return {key: value for key, value in params.items() if value is not None}


def _raise_for_error(answer: httpx.Response) -> None:
    if answer.status_code < 400:
        return
    try:
        body = answer.json()
    except ValueError:
        body = None
    # Wharf's {"error": ...}, or a Kubernetes Status object's message
    message = (body.get("error") or body.get("message")) if isinstance(body, dict) else None
    raise ControlError(message if isinstance(message, str) else answer.text, answer.status_code, body)
