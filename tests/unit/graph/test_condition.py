"""Conditions: the GJSON subset, evaluated against decoded documents, and what is refused at load time."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.errors import ConfigurationError
from wharf.graph.condition import MISSING, parse_condition, select

PEOPLE = {
    "name": {"first": "Tom", "last": "Anderson"},
    "age": 37,
    "active": True,
    "nickname": None,
    "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]},
    ],
}
V2 = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 3.0]}], "parameters": {"tier": 2}}


@pytest.mark.parametrize(
    ("expression", "document", "selected"),
    [
        ("name.last", PEOPLE, "Anderson"),
        ("age", PEOPLE, 37),
        ("nickname", PEOPLE, None),
        ("children.1", PEOPLE, "Alex"),
        ("children.3", PEOPLE, MISSING),
        ("friends.1.first", PEOPLE, "Roger"),
        ("fav\\.movie", PEOPLE, "Deer Hunter"),
        ("friends.#", PEOPLE, 3),
        ("name.#", PEOPLE, MISSING),
        ("friends.#.age", PEOPLE, [44, 68, 47]),
        ("friends.#.missing", PEOPLE, []),
        ('friends.#(last=="Murphy").first', PEOPLE, "Dale"),
        ("friends.#(last==Murphy).first", PEOPLE, "Dale"),
        ('friends.#(last="Murphy")#.first', PEOPLE, ["Dale", "Jane"]),
        ('friends.#(last=="Nobody").first', PEOPLE, MISSING),
        ('friends.#(last=="Nobody")#', PEOPLE, []),
        ("friends.#(age>45)#.last", PEOPLE, ["Craig", "Murphy"]),
        ("friends.#(age>=47)#.first", PEOPLE, ["Roger", "Jane"]),
        ("friends.#(age<45).first", PEOPLE, "Dale"),
        ("friends.#(age<=44)#.first", PEOPLE, ["Dale"]),
        ("friends.#(age!=44)#.first", PEOPLE, ["Roger", "Jane"]),
        ("friends.#(age==44.0).first", PEOPLE, "Dale"),
        ("friends.#(age==old).first", PEOPLE, MISSING),
        ('friends.#(first>"Jane")#.first', PEOPLE, ["Roger"]),
        ('friends.#(first%"D*").last', PEOPLE, "Murphy"),
        ('friends.#(first!%"D*")#.first', PEOPLE, ["Roger", "Jane"]),
        ('children.#(%"?a*")#', PEOPLE, ["Sara", "Jack"]),
        ('children.#(=="Jack")', PEOPLE, "Jack"),
        ("friends.#(nets).first", PEOPLE, "Dale"),
        ("friends.#(phone).first", PEOPLE, MISSING),
        ('friends.#(nets.#(=="fb"))#.first', PEOPLE, ["Dale", "Roger"]),
        ('friends.#(last=="Murphy")#.0', PEOPLE, []),
        ("@this.age", PEOPLE, 37),
        ("[@this].#(active==true).age", PEOPLE, 37),
        ("[@this].#(active!=true)", PEOPLE, MISSING),
        ("[@this].#(age>40)", PEOPLE, MISSING),
        ("[name.first,age,nothing]", PEOPLE, ["Tom", 37]),
        ('inputs.#(name=="x").data.1', V2, 3.0),
        ("inputs.0.shape.#", V2, 2),
        ("parameters.tier", V2, 2),
        ("[@this].#(parameters.tier>=2)", V2, V2),
        ("inputs", [1, 2], MISSING),
        ("0", [1, 2], 1),
    ],
)
def test_a_path_selects_what_gjson_selects(expression: str, document: Any, selected: Any) -> None:
    condition = parse_condition(expression)
    assert select(condition.path, document) == selected
    assert condition.matches(document) is (selected is not MISSING)


def test_a_body_that_is_not_json_matches_nothing() -> None:
    assert not parse_condition("[@this]").matches(MISSING)
    assert not parse_condition("@this").matches(MISSING)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "must not be empty"),
        ("a..b", "empty"),
        ("a.", "empty"),
        ("child*.2", "wildcards"),
        ("c?ildren", "wildcards"),
        ("friends|0", "pipe"),
        ("children.@reverse", "modifier '@reverse'"),
        ("{name,age}", "object multipaths"),
        ("friends.#(age>40", "never closed"),
        ("friends.#(age>40))", "closes nothing"),
        ("friends.#(age>40]", "does not match"),
        ("friends.#()", "needs a path or a comparison"),
        ("friends.#(age>)", "needs a value"),
        ("friends.#(age>~true)", "truthiness"),
        ('friends.#(last=="Murphy)', "never closed"),
        ("friends.#(last==Mur phy)", "needs quotes"),
        ("friends.#(age>1)x", "may only be followed"),
        ("[]", "at least one path"),
        ("[a]b", "must be followed"),
        ("a.[b]", "brackets in a key"),
    ],
)
def test_an_unsupported_expression_is_refused_when_parsed(expression: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        parse_condition(expression)


def test_escaped_specials_are_part_of_a_key() -> None:
    assert parse_condition("a\\*b\\|c").matches({"a*b|c": 0})
