"""The kubeconfig that points kubectl (and KServe's Python SDK, and any client-go program) at a running Wharf.

`wharf up` writes one to WHARF_HOME/kubeconfig (readable by this user only: it holds the admin token) at every
start: the cluster is the control API over TLS (`wharf.control.kube.tls`), trusted by the authority's certificate,
the user sends a bearer token, and the context's namespace is `default`. `wharf kubeconfig` prints it (with the
viewer's read-only token when asked) or merges it into another kubeconfig file, replacing the entries of the same
names and making its context the current one, as `kind` and `minikube` do.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from wharf.control.auth import write_private

FILE = "kubeconfig"
NAME = "wharf"
_SECTIONS = ("clusters", "users", "contexts")


def kubeconfig(server: str, authority_pem: bytes, token: str, user: str = NAME) -> dict[str, Any]:
    """A kubeconfig of one context, `user` (also the context's name) on cluster `wharf` at `server`."""
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(authority_pem).decode()}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": NAME, "user": user, "namespace": "default"}}],
        "current-context": user,
    }


def with_user(config: dict[str, Any], user: str, token: str) -> dict[str, Any]:
    """`config` (as `kubeconfig` makes it) for another user and token, on the same cluster."""
    cluster = config["clusters"][0]
    return kubeconfig(
        cluster["cluster"]["server"], base64.b64decode(cluster["cluster"]["certificate-authority-data"]), token, user
    )


def merged(existing: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any]:
    """`existing` (a kubeconfig, or None) with the clusters, users and contexts of `config` added or replacing those
    of the same names, and `config`'s context the current one."""
    out = dict(existing or {"apiVersion": "v1", "kind": "Config", "preferences": {}})
    for section in _SECTIONS:
        names = {entry["name"] for entry in config[section]}
        kept = [entry for entry in out.get(section) or [] if entry.get("name") not in names]
        out[section] = [*kept, *config[section]]
    out["current-context"] = config["current-context"]
    return out


def dumps(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def write(path: Path, config: dict[str, Any]) -> None:
    """Write `config` to `path`, readable by this user only."""
    write_private(path, dumps(config))


def read(path: Path) -> dict[str, Any] | None:
    """The kubeconfig at `path`; None when there is no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    config = yaml.safe_load(text)
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a kubeconfig (a YAML mapping)")
    return config
