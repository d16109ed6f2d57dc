"""`-o jsonpath`: the template subset kubectl users write."""

from __future__ import annotations

import pytest

from wharf.cli.jsonpath import JsonPathError, render

DOC = {
    "items": [
        {"metadata": {"name": "a", "annotations": {"x.io/y": "1"}}, "status": {"ready": True, "n": 2}},
        {"metadata": {"name": "b"}, "status": {"ready": False, "n": 3}},
    ]
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ("{.items[0].metadata.name}", "a"),
        ("{.items[-1].metadata.name}", "b"),
        ("{.items[5].metadata.name}", ""),
        ("{.items[0].metadata.missing}", ""),
        ("{.items[0].metadata.annotations['x.io/y']}", "1"),
        ("{.items[0].metadata.annotations.x\\.io/y}", "1"),
        ("{.items[*].status.ready}", "true false"),
        ("{.items[1].status}", '{"ready": false, "n": 3}'),
        ("name={.items[0].metadata.name}!", "name=a!"),
        ('{range .items[*]}{.metadata.name}={.status.n}{"\\n"}{end}', "a=2\nb=3\n"),
        ("{range .items[*]}[{$.items[0].metadata.name}]{end}", "[a][a]"),
        ("{.items[0].metadata.*}", 'a {"x.io/y": "1"}'),
        ("{'}'}", "}"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert render(template, DOC) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{.items[", "unclosed"),
        ("{.items[x]}", "use [N], [*] or ['name']"),
        ("{range .items[*]}{.a}", "without {end}"),
        ("{end}", "without {range"),
        ("{items}", "a path is made of"),
        ("{.}", "a name must follow"),
    ],
)
def test_templates_that_cannot_be_read_say_why(template: str, problem: str) -> None:
    with pytest.raises(JsonPathError) as refused:
        render(template, DOC)
    assert problem in str(refused.value)
