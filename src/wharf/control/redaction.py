"""Specs with their secrets taken out, for views that show a spec to people (the web console's spec and revision
diffs).

What is hidden, wherever it appears in the spec (replaced by `HIDDEN` and a fingerprint: the first hex digits of an
HMAC of the value under a key this process draws at random, so that two views show whether a hidden value changed,
and nothing else: the fingerprint of a short value cannot be reversed without the key, which never leaves memory):
- the value of every environment variable: `env` as Kubernetes writes it (a list of `{name, value}`) and as a
  revision keeps it (a mapping of name to value); a `valueFrom` reference names a secret but holds none, and stays;
- the value of any field whose name says it holds a secret (password, token, secret, credential, API key, access
  key, private key, signature), and of any `--flag=value` argument so named;
- in any URL (a storage URI, a logger's address): the user information (`user:password@`) and the query string
  (pre-signed URLs and SAS tokens carry their signature there).
Names, structure and everything else stay, so that two redacted revisions still show what changed between them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "••••••"
_KEY = secrets.token_bytes(32)  # this process's: fingerprints compare within one control plane's answers only
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|token|secret|credential|api[-_]?key|access[-_]?key|private[-_]?key|signature", re.I
)
_FLAG = re.compile(r"^(--?[\w.-]+)=(.*)$", re.S)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def redacted(value: Any, key: str = "") -> Any:
    """`value` (a spec, or any part of one, found under `key`) with its secrets hidden; the input is not changed."""
    if isinstance(value, dict):
        return {k: _env(v) if k == "env" else redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(item, key) for item in value]
    if isinstance(value, str):
        if key and _SECRET_NAME.search(key):
            return _hidden(value)
        return _text(value)
    return value


def _env(env: Any) -> Any:
    """An `env` field with each variable's value hidden (its name, and a `valueFrom` reference, kept)."""
    if isinstance(env, dict):
        return {name: _hidden(value) for name, value in env.items()}
    if isinstance(env, list):
        return [
            {k: _hidden(v) if k == "value" else redacted(v, k) for k, v in item.items()}
            if isinstance(item, dict)
            else item
            for item in env
        ]
    return redacted(env)


def _text(text: str) -> str:
    """A string with a secret flag's value, or a URL's credentials and query, hidden."""
    flag = _FLAG.match(text)
    if flag and _SECRET_NAME.search(flag.group(1)):
        return f"{flag.group(1)}={_hidden(flag.group(2))}"
    if not _URL.match(text):
        return text
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return _hidden(text)  # not a URL that can be shown in part
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{_hidden(user)}@{host}{port}" if user else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, _hidden(parts.query) if parts.query else "", parts.fragment))


def _hidden(value: Any) -> str:
    """`HIDDEN` with the value's fingerprint."""
    digest = hmac.new(_KEY, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{HIDDEN}{digest[:8]}"
