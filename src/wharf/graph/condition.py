"""Step conditions: the part of GJSON's path syntax that KServe's InferenceGraph router is used with.

KServe's router takes a step when its condition, read as a GJSON path, *selects something* in a JSON document (the
value found may be anything, `null` and `false` included). `parse_condition` compiles a condition once, when the
graph is loaded, and rejects what is not supported with a `ConfigurationError`; `Condition.matches` then only
walks the decoded document.

Supported, with `{"user": {"tier": "gold"}, "xs": [1, 5], "rows": [{"id": "a", "n": 3}, {"id": "b", "n": 9}]}`:

- keys separated by `.`: `user.tier`; `\\` makes the next character part of the key: `fav\\.movie`
- an array index: `xs.1`, `rows.0.id`
- `#`: an array's length when it ends the path (`xs.#` is 2); otherwise the rest of the path is applied to every
  element and the values found are collected in an array (`rows.#.id` is `["a", "b"]`, even when empty)
- queries on an array: `#(...)` selects the first element that passes, `#(...)#` the array of all that pass (the
  rest of the path then applies to each); `rows.#(n>4).id` is `"b"`
- a query is `path op value` with `op` one of `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`, `%` (like) and `!%`
  (not like; `*` matches any run of characters, `?` any one), or just `path`: the element has it. The path may be
  empty (the element itself: `xs.#(>4)`) and may hold queries of its own (`rows.#(tags.#(=="x"))`)
- a value is a JSON string (`"gold"`), a number, `true`, `false`, or a bare word (`gold`, compared as a string)
- the element found decides the comparison: a string compares with the value's text (by code point), a number
  with the value as a number, a boolean with `true`/`false` (false < true); nothing else passes a comparison
- `@this`: the current value; `[path, ...]`: an array of what each path selects, leaving out what they do not.
  KServe's examples test the whole document with `[@this].#(user.tier=="gold")`.

Not supported, and reported as such: wildcards `*` and `?` in keys, the pipe `|`, modifiers other than `@this`,
`{...}` object multipaths, `~` truthiness values. Where GJSON parses a non-numeric value as 0 to compare it with
a number, such a comparison here does not pass.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from wharf.errors import ConfigurationError


class _Missing:
    """What a path selects when it selects nothing (JSON `null` is None, which exists)."""


MISSING = _Missing()

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPERATORS = ("==", "!=", "<=", ">=", "!%", "<", ">", "=", "%")  # longest first where one prefixes another
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_KEY_SPECIALS = set("*?|()[]{}")


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _This:
    pass


@dataclass(frozen=True)
class _Count:
    pass


@dataclass(frozen=True)
class _Each:
    pass


@dataclass(frozen=True)
class _Union:
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class _Query:
    test: _Test
    every: bool


Segment = _Key | _This | _Count | _Each | _Union | _Query
Path = tuple[Segment, ...]


@dataclass(frozen=True)
class _Test:
    """One query: `path op value`, or `path` alone (op None) for "the element has it"."""

    path: Path
    op: str | None = None
    value: str = ""
    pattern: re.Pattern[str] | None = None  # for % and !%

    def passes(self, element: Any) -> bool:
        found = select(self.path, element)
        if found is MISSING:
            return False
        return self.op is None or self._compare(found)

    def _compare(self, found: Any) -> bool:
        if self.pattern is not None:
            return isinstance(found, str) and bool(self.pattern.fullmatch(found)) == (self.op == "%")
        compare = _ORDER[self.op or "=="]
        if isinstance(found, bool):
            return self.value in ("true", "false") and compare(found, self.value == "true")
        if isinstance(found, int | float):
            return _NUMBER.fullmatch(self.value) is not None and compare(found, float(self.value))
        return isinstance(found, str) and compare(found, self.value)


@dataclass(frozen=True)
class Condition:
    """A compiled condition; `text` is what the graph's author wrote."""

    text: str
    path: Path = field(repr=False, compare=False)

    def matches(self, document: Any) -> bool:
        """Whether the path selects something in `document` (decoded JSON, or MISSING for a body that is not)."""
        return select(self.path, document) is not MISSING


def parse_condition(text: str) -> Condition:
    """Compile `text`; a `ConfigurationError` says what in it is not supported."""
    if not text.strip():
        raise ConfigurationError("a condition must not be empty")
    try:
        return Condition(text, _parse_path(text))
    except ValueError as e:
        raise ConfigurationError(f"condition {text!r}: {e}") from None


def select(path: Path, value: Any) -> Any:
    """What `path` selects in `value`, or MISSING."""
    for i, segment in enumerate(path):
        if value is MISSING:
            return MISSING
        match segment:
            case _Key(name):
                value = _child(value, name)
            case _Count():
                value = len(value) if isinstance(value, list) else MISSING
            case _Each():
                return _collect(path[i + 1 :], value) if isinstance(value, list) else MISSING
            case _Query(test, every) if isinstance(value, list):
                passing = (element for element in value if test.passes(element))
                if every:
                    return _collect(path[i + 1 :], list(passing))
                value = next(passing, MISSING)
            case _Query():
                return MISSING
            case _Union(paths):
                value = [found for p in paths if (found := select(p, value)) is not MISSING]
    return value


def _child(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list) and key.isascii() and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return MISSING


def _collect(rest: Path, elements: list[Any]) -> list[Any]:
    return [found for element in elements if (found := select(rest, element)) is not MISSING]


# Parsing. Brackets, parentheses and (inside them) JSON strings nest; `\` escapes the next character.


def _parse_path(text: str) -> Path:
    parts = _split(text, ".")
    segments: list[Segment] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":
            raise ValueError("a path component is empty (two dots, or a dot at either end)")
        if part == "#":
            segments.append(_Count() if last else _Each())
        elif part.startswith("#("):
            segments.append(_parse_query(part))
        elif part == "@this":
            segments.append(_This())
        elif part.startswith("@"):
            raise ValueError(f"the modifier {part!r} is not supported (only @this is)")
        elif part.startswith("[") and i == 0:
            segments.append(_parse_union(part))
        elif part.startswith("{"):
            raise ValueError("object multipaths {...} are not supported")
        else:
            segments.append(_Key(_unescape_key(part)))
    return tuple(segments)


def _parse_union(part: str) -> _Union:
    if _closing(part, 0) != len(part) - 1:
        raise ValueError(f"{part!r}: a multipath [...] must be followed by '.' or end the path")
    inner = part[1:-1]
    if not inner.strip():
        raise ValueError("a multipath [...] needs at least one path")
    return _Union(tuple(_parse_path(p.strip()) for p in _split(inner, ",")))


def _parse_query(part: str) -> _Query:
    end = _closing(part, 1)
    if part[end + 1 :] not in ("", "#"):
        raise ValueError(f"{part!r}: a query #(...) may only be followed by '#' or '.'")
    inner = part[2:end].strip()
    at, op = _find_operator(inner)
    if op is None:
        if not inner:
            raise ValueError("a query #() needs a path or a comparison")
        return _Query(_Test(_parse_path(inner)), every=part.endswith(")#"))
    left, value = inner[:at].strip(), _parse_value(inner[at + len(op) :].strip())
    pattern = _like(value) if op in ("%", "!%") else None
    test = _Test(_parse_path(left) if left else (), "==" if op == "=" else op, value, pattern)
    return _Query(test, every=part.endswith(")#"))


def _parse_value(text: str) -> str:
    if text.startswith('"'):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError(f"{text} is not a JSON string") from None
        if not isinstance(value, str):
            raise ValueError(f"{text} is not one JSON string")
        return value
    if not text:
        raise ValueError("a comparison needs a value after its operator")
    if text.startswith("~"):
        raise ValueError(f"truthiness values ({text}) are not supported")
    if any(c in text for c in '"()[]{} '):
        raise ValueError(f"the value {text!r} needs quotes")
    return text


def _like(pattern: str) -> re.Pattern[str]:
    wild = {"*": ".*", "?": "."}
    return re.compile("".join(wild.get(c) or re.escape(c) for c in pattern), re.DOTALL)


def _unescape_key(part: str) -> str:
    key: list[str] = []
    chars = iter(part)
    for c in chars:
        if c == "\\":
            key.append(next(chars, ""))
        elif c in _KEY_SPECIALS:
            what = "wildcards are" if c in "*?" else "the pipe is" if c == "|" else "brackets in a key are"
            raise ValueError(f"{what} not supported ({c!r} in {part!r}; '\\' before it makes it part of the key)")
        else:
            key.append(c)
    return "".join(key)


def _find_operator(text: str) -> tuple[int, str | None]:
    """The first operator outside brackets and strings, and where it is."""
    for i in _top_level(text):
        for op in _OPERATORS:
            if text.startswith(op, i):
                return i, op
    return -1, None


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at each `separator` outside brackets and strings (escapes are kept)."""
    parts, start = [], 0
    for i in _top_level(text):
        if text[i] == separator:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _top_level(text: str) -> list[int]:
    """The positions in `text` outside brackets, strings and escapes."""
    positions, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "([":
            i = _closing(text, i) + 1
            continue
        if c == '"':
            i = _string_end(text, i) + 1
            continue
        if c in ")]":
            raise ValueError(f"{text!r}: {c!r} closes nothing")
        positions.append(i)
        i += 1
    return positions


def _closing(text: str, start: int) -> int:
    """Where the bracket opened at `start` is closed."""
    closer = {"(": ")", "[": "]"}
    expected = [closer[text[start]]]
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 1
        elif c == '"':
            i = _string_end(text, i)
        elif c in closer:
            expected.append(closer[c])
        elif c in ")]":
            if c != expected.pop():
                raise ValueError(f"{text!r}: {c!r} does not match its opening bracket")
            if not expected:
                return i
        i += 1
    raise ValueError(f"{text!r}: {text[start]!r} is never closed")


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 1
        elif text[i] == '"':
            return i
        i += 1
    raise ValueError(f"{text!r}: a string is never closed")
