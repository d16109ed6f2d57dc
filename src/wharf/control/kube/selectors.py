"""Kubernetes' label and field selectors (`labelSelector=`, `fieldSelector=` of a list or watch), parsed once per
request into a `Selector` that tells whether a resource matches.

A label selector is requirements separated by commas, all of which must hold:
- `key=value`, `key==value` (the label is there with that value), `key!=value` (it is not, or is absent);
- `key in (a,b)`, `key notin (a,b)` (absent counts as not in);
- `key` (the label is there), `!key` (it is not).
Keys are Kubernetes' (an optional DNS subdomain prefix and `/`, then a name of at most 63 characters); values at most
63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit, or empty. Anything
else is refused (400), naming the requirement.

A field selector is `field=value`, `field==value` or `field!=value`, comma-separated, on the fields a custom
resource can be selected by: `metadata.name` and `metadata.namespace`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wharf.control.kube.status import StatusError

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")
_TERM = re.compile(r"\s*(!?)\s*([^\s!=,()]+)\s*(?:(==|=|!=)\s*([^\s,()]*)|(in|notin)\s*\(([^()]*)\))?\s*(?:,|$)")
SELECTABLE_FIELDS = ("metadata.name", "metadata.namespace")

Requirement = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Selector:
    """The requirements of a label selector and a field selector together."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, str, bool], ...] = ()  # (field, value, equal)

    def matches(self, namespace: str, name: str, labels: Mapping[str, str]) -> bool:
        values = {"metadata.namespace": namespace, "metadata.name": name}
        return all((values[f] == v) == equal for f, v, equal in self.fields) and all(r(labels) for r in self.labels)

    def equal(self, field: str) -> str | None:
        """The value an `=` requirement gives `field`, if any (a list narrows its reading by it)."""
        return next((v for f, v, equal in self.fields if f == field and equal), None)


def selector(label_selector: str | None, field_selector: str | None) -> Selector:
    """Parse both selectors; StatusError 400 naming what is wrong."""
    return Selector(_labels(label_selector or ""), _fields(field_selector or ""))


def _labels(text: str) -> tuple[Requirement, ...]:
    requirements: list[Requirement] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"labelSelector: cannot read {text[position:]!r} (e.g. app=iris,tier in (a,b),!canary)")
        requirements.append(_requirement(match))
        position = match.end()
    return tuple(requirements)


def _requirement(match: re.Match[str]) -> Requirement:
    negated, key, operator, value, set_operator, values = match.groups()
    term = match.group(0).strip().rstrip(",")
    if not _KEY.fullmatch(key) or len(key.rpartition("/")[0]) > 253:
        raise _bad(f"labelSelector: {key!r} in {term!r} is not a label key")
    if negated and (operator or set_operator):
        raise _bad(f"labelSelector: {term!r}: '!' goes only before a key alone (!key: the label is absent)")
    if negated:
        return lambda labels: key not in labels
    if operator:
        _check_value(value, term)
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if set_operator:
        chosen = frozenset(v.strip() for v in values.split(","))
        for each in chosen:
            _check_value(each, term)
        if set_operator == "in":
            return lambda labels: labels.get(key) in chosen
        return lambda labels: labels.get(key) not in chosen
    return lambda labels: key in labels


def _check_value(value: str, term: str) -> None:
    if not _VALUE.fullmatch(value):
        raise _bad(f"labelSelector: {value!r} in {term!r} is not a label value")


def _fields(text: str) -> tuple[tuple[str, str, bool], ...]:
    fields = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        match = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", term)
        if match is None:
            raise _bad(f"fieldSelector: cannot read {term!r} (e.g. metadata.name=iris)")
        field, operator, value = match.groups()
        if field not in SELECTABLE_FIELDS:
            known = " and ".join(SELECTABLE_FIELDS)
            raise _bad(f"fieldSelector: {field!r} is not a field that can be selected by; {known} are")
        fields.append((field, value.strip(), operator != "!="))
    return tuple(fields)


def _bad(message: str) -> StatusError:
    return StatusError(400, message)
