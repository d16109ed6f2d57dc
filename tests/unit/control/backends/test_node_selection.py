"""Node selection: a component's nodeSelector and tolerations as the Ray node labels a replica's node must (not) carry."""

from __future__ import annotations

import pytest

from wharf.control.backends.node_selection import TAINT_PREFIX, NodeSelection

GPU_TAINT = {TAINT_PREFIX + "gpu": "true"}


def test_an_empty_selection_admits_every_untainted_node_and_asks_nothing() -> None:
    nothing = NodeSelection.from_kubernetes(None, None)
    assert not nothing and nothing == NodeSelection()
    assert nothing.admits({}) and nothing.admits({"disk": "ssd"}) and not nothing.admits(GPU_TAINT)
    assert nothing.label_selector([{}, {"disk": "ssd"}]) == {} and nothing.describe() == ""


def test_a_node_selector_admits_only_nodes_with_every_label() -> None:
    ssd = NodeSelection.from_kubernetes({"zone": "a", "disk": "ssd"}, None)
    assert ssd.node_selector == (("disk", "ssd"), ("zone", "a"))  # sorted: one digest whatever the order
    assert ssd.admits({"disk": "ssd", "zone": "a", "other": "x"})
    assert not ssd.admits({"disk": "ssd"}) and not ssd.admits({"disk": "hdd", "zone": "a"})
    assert ssd.label_selector([]) == {"disk": "ssd", "zone": "a"} and ssd.describe() == "labels disk=ssd,zone=a"


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "gpu", "value": "true"},
        {"operator": "Exists"},
    ],
)
def test_a_tainted_node_takes_only_replicas_that_tolerate_its_taint(toleration: dict[str, str]) -> None:
    assert NodeSelection.from_kubernetes(None, [toleration]).admits(GPU_TAINT)


def test_a_toleration_of_another_taint_or_value_does_not_admit() -> None:
    for toleration in ({"key": "gpu", "value": "false"}, {"key": "dedicated", "operator": "Exists"}):
        assert not NodeSelection.from_kubernetes(None, [toleration]).admits(GPU_TAINT)


def test_the_label_selector_keeps_ray_off_the_tainted_nodes_it_does_not_tolerate() -> None:
    nodes = [{}, GPU_TAINT, {TAINT_PREFIX + "gpu": "shared"}, {TAINT_PREFIX + "dedicated": "infer"}]
    plain = NodeSelection.from_kubernetes({"disk": "ssd"}, [{"key": "dedicated", "operator": "Exists"}])
    assert plain.label_selector(nodes) == {"disk": "ssd", TAINT_PREFIX + "gpu": "!in(shared,true)"}


@pytest.mark.parametrize(
    ("toleration", "field"),
    [
        ({"key": "a", "operator": "Gt"}, "tolerations[0].operator"),
        ({"key": "a", "operator": "Exists", "value": "b"}, "tolerations[0].value"),
        ({"value": "b"}, "tolerations[0].key"),
    ],
)
def test_a_wrong_toleration_is_refused_naming_its_field(toleration: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[")):
        NodeSelection.from_kubernetes(None, [toleration])
