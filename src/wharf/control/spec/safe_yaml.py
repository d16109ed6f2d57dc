"""Manifest text (YAML, and JSON, which YAML reads) decoded within limits, so that a small text cannot take the
control plane's memory or time.

PyYAML's safe loader builds no objects but plain ones, yet it still expands aliases (a 39 KB "billion laughs"
text names 10^9 values), recurses once per level of nesting (1,000 levels overflow Python's stack), and reads any
number of documents. Before anything is built, the text's events are read once (libyaml's parser when installed,
about 1 µs an event) and it is refused, with the reason, when:

- collections nest deeper than `MAX_DEPTH` levels (an alias counts the depth of what it names);
- aliases make the values read more than `ALIAS_FACTOR` times the values written (plus `ALIAS_ALLOWANCE`), or an
  alias names the collection it is in;
- the values read, aliases expanded, are more than `MAX_VALUES` (every manifest of a machine takes far fewer);
- there are more documents than the caller allows.

The first refusal stops the reading, so a refused text costs at most the events read up to it. A text that passes
is then built by the same (C) loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from wharf.control.spec.common import SpecError

MAX_DEPTH = 64
MAX_VALUES = 100_000
ALIAS_FACTOR = 10
ALIAS_ALLOWANCE = 1_000

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass(slots=True)
class _Open:
    """A collection being read: its anchor, and the values and levels of nesting inside it so far."""

    anchor: str | None
    values: int = 1
    depth: int = 1


def load_documents(text: str, max_documents: int, documents_setting: str = "") -> list[Any]:
    """The documents of `text`, decoded (None for an empty one); raises SpecError when it is not YAML or exceeds a
    limit (`documents_setting` names what raises `max_documents`, for the refusal)."""
    try:
        _check(text, max_documents, documents_setting)
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as e:
        raise SpecError([("", f"invalid YAML: {e}")]) from None


def _refuse(reason: str) -> SpecError:
    return SpecError([("", reason)])


def _check(text: str, max_documents: int, documents_setting: str) -> None:
    """Read the events of `text`, refusing it at the first limit it exceeds (see the module's docstring)."""
    open_: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) of the node it names
    written = read = documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            anchors.clear()  # an anchor names a node of its own document only
            if documents > max_documents:
                setting = f" ({documents_setting})" if documents_setting else ""
                raise _refuse(f"more than {max_documents} documents in one text{setting}; apply them in parts")
            continue
        if isinstance(event, _END):
            done = open_.pop()
            values, depth = done.values, done.depth
            if done.anchor is not None:
                anchors[done.anchor] = (values, depth)
        elif isinstance(event, _START):
            written += 1
            read += 1
            open_.append(_Open(event.anchor))
            if len(open_) > MAX_DEPTH:
                raise _refuse(f"collections nested more than {MAX_DEPTH} levels deep")
            continue
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                if any(o.anchor == event.anchor for o in open_):
                    raise _refuse(f"the alias *{event.anchor} names a collection it is inside of")
                continue  # an undefined alias: the loader says so
            values, depth = anchors[event.anchor]
            written += 1
            read += values
            if len(open_) + depth > MAX_DEPTH:
                raise _refuse(f"the alias *{event.anchor} nests collections more than {MAX_DEPTH} levels deep")
            if read > ALIAS_FACTOR * written + ALIAS_ALLOWANCE:
                raise _refuse(
                    f"aliases expand the text to more than {ALIAS_FACTOR} times the values written in it"
                    " (an alias bomb?); write the values out"
                )
        elif isinstance(event, yaml.ScalarEvent):
            written += 1
            read += 1
            values, depth = 1, 0
            if event.anchor is not None:
                anchors[event.anchor] = (values, depth)
        else:
            continue
        if read > MAX_VALUES:
            raise _refuse(f"more than {MAX_VALUES} values (aliases expanded); a manifest needs far fewer")
        if open_:
            parent = open_[-1]
            parent.values += values
            parent.depth = max(parent.depth, depth + 1)
