"""Following resources across watch streams.

A watch stream lasts a bounded time (so that a connection that died silently is noticed), and each new stream
starts, as the control API's watch does, with every resource there now, then a BOOKMARK, then the changes. `Seen`
keeps what the follower has been shown, so that a reopened stream shows only what changed in between: a resource
not shown before as ADDED, one that differs from how it was shown as MODIFIED, and one shown before that the new
stream's first resources lack as DELETED. Pure: no clock, no I/O.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, str]
Change = tuple[str, dict[str, Any]]


class Seen:
    """What a follower was shown of each resource, by (namespace, name)."""

    def __init__(self) -> None:
        self._shown: dict[Key, dict[str, Any]] = {}
        self._listed: set[Key] | None = None  # while a stream sends its first resources: the ones it sent

    def opened(self) -> None:
        """A stream (re)opened: its first resources say what is there now."""
        self._listed = set()

    def saw(self, change: str, document: dict[str, Any]) -> list[Change]:
        """The changes to show for one event of the stream (none, or several at its BOOKMARK)."""
        if change == "BOOKMARK":
            return self._listing_ended()
        key = _key(document)
        if change == "DELETED":
            self._shown.pop(key, None)
            return [(change, document)]
        before = self._shown.get(key)
        self._shown[key] = document
        if self._listed is None:
            return [(change, document)]
        self._listed.add(key)
        if before == document:
            return []
        return [("ADDED" if before is None else "MODIFIED", document)]

    def _listing_ended(self) -> list[Change]:
        listed, self._listed = self._listed, None
        if listed is None:
            return []
        gone = [key for key in self._shown if key not in listed]
        return [("DELETED", self._shown.pop(key)) for key in gone]


def _key(document: dict[str, Any]) -> Key:
    metadata = document.get("metadata") or {}
    return str(metadata.get("namespace") or "default"), str(metadata.get("name"))
