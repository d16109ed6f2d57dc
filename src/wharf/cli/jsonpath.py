"""`-o jsonpath=TEMPLATE`: the part of kubectl's JSONPath templates that picks fields out of resources.

A template is text with expressions in braces: `{.metadata.name}`, `{.items[*].status.url}`, `{.spec.nodes[0]}`,
`{.metadata.annotations['serving.wharf.dev/shadow-percent']}` (or `a\\.b` to escape a dot), `{"\\n"}` for a
string, and `{range .items[*]}...{end}` to repeat the text between for each match (inside it, a path starting with
`.` starts at the match, `$` at the whole document). A path is made of `.name`, `[N]` (negative counts from the
end), `[*]` and `.*` (every item or value) and `['name']`. As in kubectl, several matches print separated by a
space; a missing field prints nothing; strings print as they are, other values as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')
_NAME = re.compile(r"(?:[^.\[\]\\]|\\.)+")
_INDEX = re.compile(r"\[\s*(-?\d+|\*|'[^']*'|\"[^\"]*\")\s*\]")


class JsonPathError(ValueError):
    """A template that cannot be read."""


Step = str | int | None  # a field, an index, or None for every item


@dataclass(frozen=True)
class _Path:
    steps: tuple[Step, ...]
    from_root: bool


@dataclass(frozen=True)
class _Range:
    path: _Path
    body: tuple[Any, ...]  # of str (text), _Path and _Range


def render(template: str, document: Any) -> str:
    """The template's text, its expressions replaced by what they pick out of `document`."""
    nodes, rest = _parse(_tokens(template), inside_range=False)
    assert not rest
    return _render(nodes, document, document)


def _tokens(template: str) -> list[tuple[bool, str]]:
    """(is an expression, text) for each piece of the template."""
    tokens, at = [], 0
    while at < len(template):
        start = template.find("{", at)
        if start < 0:
            tokens.append((False, template[at:]))
            break
        if start > at:
            tokens.append((False, template[at:start]))
        end = _closing(template, start)
        tokens.append((True, template[start + 1 : end].strip()))
        at = end + 1
    return tokens


def _closing(template: str, start: int) -> int:
    """Where the expression opened at `start` closes (a brace inside quotes does not close it)."""
    at, quote = start + 1, None
    while at < len(template):
        char = template[at]
        if quote:
            if char == "\\":
                at += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "}":
            return at
        at += 1
    raise JsonPathError(f"unclosed {{ at character {start + 1} of the template")


def _parse(tokens: list[tuple[bool, str]], inside_range: bool) -> tuple[tuple[Any, ...], list[tuple[bool, str]]]:
    nodes: list[Any] = []
    while tokens:
        is_expression, text = tokens.pop(0)
        if not is_expression:
            nodes.append(text)
        elif text == "end":
            if not inside_range:
                raise JsonPathError("{end} without {range ...}")
            return tuple(nodes), tokens
        elif text.startswith("range "):
            body, tokens = _parse(tokens, inside_range=True)
            nodes.append(_Range(_path(text.removeprefix("range ").strip()), body))
        elif (string := _STRING.fullmatch(text)) is not None:
            nodes.append(_string(string))
        else:
            nodes.append(_path(text))
    if inside_range:
        raise JsonPathError("{range ...} without {end}")
    return tuple(nodes), tokens


def _string(literal: re.Match[str]) -> str:
    """A quoted string, its escapes read as JSON's."""
    body = literal.group(1)
    if body is None:
        body = literal.group(2).replace("\\'", "'").replace('"', '\\"')
    try:
        return json.loads(f'"{body}"')
    except ValueError:
        raise JsonPathError(f"cannot read the string {literal.group()}") from None


def _path(text: str) -> _Path:
    """A path: `$`, `@` or nothing, then `.name`, `.*`, `[N]`, `[*]`, `['name']` steps."""
    from_root = text.startswith("$")
    at = 1 if text[:1] in ("$", "@") else 0
    steps: list[Step] = []
    while at < len(text):
        if text[at] == "[":
            index = _INDEX.match(text, at)
            if index is None:
                raise JsonPathError(f"cannot read {text[at:]!r} in {text!r}: use [N], [*] or ['name']")
            value = index.group(1)
            steps.append(None if value == "*" else value[1:-1] if value[0] in "'\"" else int(value))
            at = index.end()
        elif text[at] == ".":
            if text[at + 1 : at + 2] == "*":
                steps.append(None)
                at += 2
                continue
            name = _NAME.match(text, at + 1)
            if name is None:
                raise JsonPathError(f"a name must follow the dot at {text[at:]!r} in {text!r}")
            steps.append(re.sub(r"\\(.)", r"\1", name.group()))
            at = name.end()
        else:
            raise JsonPathError(f"cannot read {text[at:]!r} in {text!r}: a path is made of .name, [N], [*]")
    return _Path(tuple(steps), from_root)


def _matches(path: _Path, current: Any, root: Any) -> list[Any]:
    found = [root if path.from_root else current]
    for step in path.steps:
        found = [value for each in found for value in _step(step, each)]
    return found


def _step(step: Step, value: Any) -> list[Any]:
    if step is None:
        return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []
    if isinstance(step, int):
        return [value[step]] if isinstance(value, list) and -len(value) <= step < len(value) else []
    return [value[step]] if isinstance(value, dict) and step in value else []


def _render(nodes: tuple[Any, ...], current: Any, root: Any) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Range):
            out += [_render(node.body, item, root) for item in _matches(node.path, current, root)]
        else:
            out.append(" ".join(_text(value) for value in _matches(node, current, root)))
    return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
