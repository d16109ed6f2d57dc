"""Label and field selectors as Kubernetes reads them: equality, sets, existence, and the refusals."""

from __future__ import annotations

import pytest

from wharf.control.kube.selectors import selector
from wharf.control.kube.status import StatusError

LABELS = {"app": "iris", "tier": "gold", "example.com/team": "ml"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=iris", True),
        ("app==iris", True),
        ("app!=iris", False),
        ("missing!=x", True),  # absent counts as not equal
        ("app in (iris, other)", True),
        ("app notin (iris)", False),
        ("missing notin (a)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("example.com/team=ml,tier in (gold,silver),!canary", True),
        ("app=iris,tier=silver", False),
        ("app=", False),  # an empty value: the label is there and empty
    ],
)
def test_a_label_selector_matches_as_kubernetes_does(text: str, matches: bool) -> None:
    assert selector(text, None).matches("default", "a", LABELS) is matches


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("app in (a", "cannot read"),
        ("!app=iris", "'!' goes only before a key"),
        ("Bad Key=x", "cannot read"),
        ("-bad=x", "is not a label key"),
        ("app=" + "x" * 64, "is not a label value"),
        ("app>3", "is not a label key"),
    ],
)
def test_a_label_selector_it_cannot_read_is_a_bad_request(text: str, named: str) -> None:
    with pytest.raises(StatusError, match="labelSelector") as refused:
        selector(text, None)
    assert refused.value.http_status == 400 and named in refused.value.message


def test_field_selectors_select_by_name_and_namespace() -> None:
    chosen = selector(None, "metadata.name=a,metadata.namespace!=prod")
    assert chosen.matches("default", "a", {}) and not chosen.matches("prod", "a", {})
    assert not chosen.matches("default", "b", {})
    assert selector(None, "metadata.namespace==ml").equal("metadata.namespace") == "ml"
    with pytest.raises(StatusError, match="'spec.x' is not a field that can be selected by"):
        selector(None, "spec.x=1")
    with pytest.raises(StatusError, match="cannot read"):
        selector(None, "metadata.name")
