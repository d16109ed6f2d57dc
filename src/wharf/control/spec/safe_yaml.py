"""Manifest text (YAML, and JSON, which YAML reads) decoded within limits, so that a small text cannot take the
control plane's memory or time.

PyYAML's safe loader builds no objects but plain ones, yet it still expands aliases (a 39 KB "billion laughs"
text names 10^9 values, and a long string named by thousands of aliases is stored, and sent back, as many times),
recurses once per level of nesting (1,000 levels overflow Python's stack), and reads any number of documents.
Before anything is built, the text's events are read once (libyaml's parser when installed, about 1 µs an event)
and it is refused, with the reason, when:

- collections nest deeper than `MAX_DEPTH` levels (an alias counts the depth of what it names);
- aliases make the values, or the characters of scalars, more than `ALIAS_FACTOR` times those written (plus
  `ALIAS_ALLOWANCE`), or an alias names the collection it is in;
- the values read, aliases expanded, are more than `MAX_VALUES` (every manifest of a machine takes far fewer);
- there are more documents than the caller allows.

The first refusal stops the reading, so a refused text costs at most the events read up to it. A text that passes
is then built by the same (C) loader, which refuses, as YAML errors at their place in the text, an integer
written in more than `MAX_INT_CHARACTERS` characters (Python refuses to read, or to show, one of more than 4,300
digits, and YAML 1.1's base-60 integers such as 1:59:59 take time quadratic in their length) and a plain value
Python cannot make (a date such as 2020-13-45).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from wharf.control.spec.common import SpecError

MAX_DEPTH = 64
MAX_INT_CHARACTERS = 1_000
MAX_VALUES = 100_000
ALIAS_FACTOR = 10
#: What aliases may add whatever the text's size: values, and characters of scalars.
ALIAS_ALLOWANCE = (1_000, 64 * 2**10)

_SHOWN = 40  # characters of a refused value quoted in the refusal


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser when installed), refusing integers too long and values it cannot make."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as e:  # raised by the value's own constructor: datetime(), int()
            raise _unreadable(node, str(e)) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARACTERS:
            raise _unreadable(node, f"a manifest's integers have at most {MAX_INT_CHARACTERS} characters")
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_KINDS = {"int": "an integer", "timestamp": "a date"}


def _unreadable(node: yaml.Node, reason: str) -> yaml.constructor.ConstructorError:
    shown = node.value if len(node.value) <= _SHOWN else f"{node.value[:_SHOWN]}... ({len(node.value)} characters)"
    kind = node.tag.rpartition(":")[2]
    problem = f"{shown} cannot be read as {_KINDS.get(kind, kind)} ({reason}); quote it if it is a string"
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass(slots=True)
class _Size:
    """What a node holds, aliases expanded: values, characters of scalars, and levels of collections."""

    values: int = 0
    chars: int = 0
    depth: int = 0

    def add(self, other: _Size) -> None:
        self.values += other.values
        self.chars += other.chars
        self.depth = max(self.depth, other.depth + 1)


def load_documents(text: str, max_documents: int, documents_setting: str = "") -> list[Any]:
    """The documents of `text`, decoded (None for an empty one); raises SpecError when it is not YAML or exceeds a
    limit (`documents_setting` names what raises `max_documents`, for the refusal)."""
    try:
        _check(text, max_documents, documents_setting)
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        if e.problem == "exceeded maximum nesting depth":  # libyaml's own limit, met while it looks ahead
            raise _too_deep() from None
        raise SpecError([("", f"invalid YAML: {e}")]) from None
    except yaml.YAMLError as e:
        raise SpecError([("", f"invalid YAML: {e}")]) from None


def _refuse(reason: str) -> SpecError:
    return SpecError([("", reason)])


def _too_deep() -> SpecError:
    return _refuse(f"collections nested more than {MAX_DEPTH} levels deep")


def _check(text: str, max_documents: int, documents_setting: str) -> None:
    """Read the events of `text`, refusing it at the first limit it exceeds (see the module's docstring)."""
    open_: list[tuple[str | None, _Size]] = []  # the collections being read: anchor, size so far
    anchors: dict[str, _Size] = {}
    written, read = _Size(), _Size()  # the whole text: as written, and with aliases expanded
    documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            anchors.clear()  # an anchor names a node of its own document only
            if documents > max_documents:
                setting = f" ({documents_setting})" if documents_setting else ""
                raise _refuse(f"more than {max_documents} documents in one text{setting}; apply them in parts")
            continue
        if isinstance(event, _START):
            open_.append((event.anchor, _Size(values=1, depth=1)))
            written.values += 1
            read.values += 1
            if len(open_) > MAX_DEPTH:
                raise _too_deep()
            continue
        if isinstance(event, _END):
            anchor, node = open_.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, node = event.anchor, _Size(values=1, chars=len(event.value))
            written.values += 1
            written.chars += node.chars
            read.values += 1
            read.chars += node.chars
        elif isinstance(event, yaml.AliasEvent):
            anchor, node = None, _alias(event.anchor, anchors, open_)
            written.values += 1
            read.values += node.values
            read.chars += node.chars
            if len(open_) + node.depth > MAX_DEPTH:
                raise _refuse(f"the alias *{event.anchor} nests collections more than {MAX_DEPTH} levels deep")
            if read.values > ALIAS_FACTOR * written.values + ALIAS_ALLOWANCE[0] or (
                read.chars > ALIAS_FACTOR * written.chars + ALIAS_ALLOWANCE[1]
            ):
                raise _refuse(
                    f"aliases expand the text to more than {ALIAS_FACTOR} times what is written in it"
                    " (an alias bomb?); write the values out"
                )
        else:
            continue
        if read.values > MAX_VALUES:
            raise _refuse(f"more than {MAX_VALUES} values (aliases expanded); a manifest needs far fewer")
        if anchor is not None:
            anchors[anchor] = node
        if open_:
            open_[-1][1].add(node)


def _alias(anchor: str, anchors: dict[str, _Size], open_: list[tuple[str | None, _Size]]) -> _Size:
    """The size of the node an alias names (nothing for an undefined alias: the loader says so)."""
    if anchor in anchors:
        return anchors[anchor]
    if any(name == anchor for name, _ in open_):
        raise _refuse(f"the alias *{anchor} names a collection it is inside of")
    return _Size()
