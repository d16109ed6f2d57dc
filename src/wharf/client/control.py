"""`ControlClient`: the control plane's REST API (what `wharf apply/get/delete/rollout` use)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8002"
DEFAULT_HOME = Path(".wharf")
PLURALS = {
    "inferenceservice": "inferenceservices",
    "inferenceservices": "inferenceservices",
    "isvc": "inferenceservices",
    "inferencegraph": "inferencegraphs",
    "inferencegraphs": "inferencegraphs",
    "ig": "inferencegraphs",
}
_GROUPS = {"inferenceservices": "serving.kserve.io/v1beta1", "inferencegraphs": "serving.kserve.io/v1alpha1"}


class ControlError(Exception):
    """The control plane refused a call, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def plural(kind: str) -> str:
    """The resource collection for a kind or its short name (`isvc`, `ig`)."""
    try:
        return PLURALS[kind.lower()]
    except KeyError:
        raise ControlError(f"unknown resource kind {kind!r}; use isvc or ig") from None


@dataclass(frozen=True, slots=True)
class DaemonAddress:
    """What `wharf up` leaves in its WHARF_HOME for clients (`daemon.json`, readable by its user only): where its
    APIs listen and the admin token, as a kubeconfig tells kubectl where its cluster is."""

    control_url: str
    gateway_url: str
    gateway_grpc: str
    token: str

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


class ControlClient:
    """The control API. Without `url`, the client finds its daemon the way kubectl finds its cluster:
    WHARF_CONTROL_URL, else the `daemon.json` of WHARF_HOME, else the default address; the token likewise comes
    from `token`, WHARF_TOKEN or that file."""

    def __init__(self, url: str | None = None, timeout_s: float = 30.0, token: str | None = None) -> None:
        address = DaemonAddress.read(home_from_env())
        url = url or os.environ.get("WHARF_CONTROL_URL") or (address.control_url if address else DEFAULT_URL)
        token = token or os.environ.get("WHARF_TOKEN") or (address.token if address else None)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def apply(self, manifests: str, base: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
        """Apply one or more YAML (or JSON) documents; returns what happened to each resource (`kind`,
        `namespace`, `name`, `result` and the `warnings` about fields with no effect there). `base` is the
        directory relative paths in the manifests are read from (the file's); without it, the daemon's."""
        return self._call(
            "POST",
            "/apis/apply",
            content=manifests.encode(),
            headers={"content-type": "application/yaml"},
            params={} if base is None else {"base": os.path.abspath(base)},
        )["results"]

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        collection = plural(kind)
        scope = f"namespaces/{namespace}/" if namespace else ""
        return self._call("GET", f"/apis/{_GROUPS[collection]}/{scope}{collection}")["items"]

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        return self._call("GET", self._path(kind, name, namespace))

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        self._call("DELETE", self._path(kind, name, namespace))

    def promote(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self._call("POST", self._path("isvc", name, namespace) + "/promote")

    def rollback(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self._call("POST", self._path("isvc", name, namespace) + "/rollback")

    def _path(self, kind: str, name: str, namespace: str) -> str:
        collection = plural(kind)
        return f"/apis/{_GROUPS[collection]}/namespaces/{namespace}/{collection}/{name}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ControlError(f"cannot reach the Wharf control plane at {self._http.base_url}: {e}") from None
        if answer.status_code >= 400:
            try:
                message = answer.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = answer.text
            raise ControlError(message, answer.status_code)
        return answer.json() if answer.content else None
