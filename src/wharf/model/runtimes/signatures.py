"""Telling boosted-tree model files apart by their first bytes, before any framework is asked to load one.

KServe names both XGBoost's and LightGBM's files `model.bst`, and XGBoost writes JSON, UBJSON or (before 3.1) its
own binary format under any name. A framework handed another's file fails with a C++ stack trace; reading the
first bytes instead names what the file is. Costs one small read per artifact, at load time only.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

_HEAD_BYTES = 256
# UBJSON markers that may follow an object's "{": a key's length type, or a typed/counted object's `$` and `#`
_UBJSON_MARKERS = b"iUIlL$#"
_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")  # XGBoost's "[13:11:23] /src/c_api/c_api.cc:1530: "


class Content(StrEnum):
    XGBOOST_JSON = "XGBoost JSON"
    XGBOOST_UBJSON = "XGBoost UBJSON"
    XGBOOST_BINARY = "XGBoost's old binary format"
    LIGHTGBM_TEXT = "a LightGBM text model"
    UNKNOWN = "unknown"

    @property
    def runtime(self) -> str | None:
        """The runtime serving this content (None for unknown content)."""
        if self is Content.UNKNOWN:
            return None
        return "lightgbm" if self is Content.LIGHTGBM_TEXT else "xgboost"


def content_of(path: Path) -> Content:
    """What `path` holds, as far as its first bytes tell."""
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return Content.UNKNOWN
    if head.startswith(b"tree\n"):  # LightGBM's text model: "tree\nversion=v4\n..."
        return Content.LIGHTGBM_TEXT
    if head.startswith(b"binf"):
        return Content.XGBOOST_BINARY
    stripped = head.lstrip()
    if stripped.startswith(b"{") and b'"learner"' in stripped:
        return Content.XGBOOST_JSON
    if head[:1] == b"{" and head[1:2] and head[1] in _UBJSON_MARKERS and b"learner" in head:
        return Content.XGBOOST_UBJSON
    return Content.UNKNOWN


def first_line(error: BaseException) -> str:
    """A framework error's first line: its message without the C++ stack trace that follows it."""
    text = str(error).strip()
    return _LOG_PREFIX.sub("", text.splitlines()[0].strip()) if text else type(error).__name__
