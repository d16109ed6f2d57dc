"""Request bodies and patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), the patch types taken and refused,
and a framework shorthand winning over a stored `model`."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.control.kube.patch import (
    check_patch_type,
    decode,
    json_patch,
    merge_patch,
    shorthand_as_model,
    shorthand_wins,
)
from wharf.control.kube.status import StatusError


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386's examples
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_leaves_its_target_alone() -> None:
    target = {"spec": {"a": 1}}
    merge_patch(target, {"spec": {"a": 2}})
    assert target == {"spec": {"a": 1}}


def test_json_patch_operations() -> None:
    document = {"spec": {"predictor": {"minReplicas": 1}}, "list": [1, 2]}
    patched = json_patch(
        document,
        [
            {"op": "test", "path": "/spec/predictor/minReplicas", "value": 1},
            {"op": "replace", "path": "/spec/predictor/minReplicas", "value": 2},
            {"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 10},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "add", "path": "/list/0", "value": 0},
            {"op": "remove", "path": "/list/1"},
            {"op": "copy", "from": "/list", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/a~1b"},
        ],
    )
    assert patched == {
        "spec": {"predictor": {"minReplicas": 2, "canaryTrafficPercent": 10}},
        "list": [0, 2, 3],
        "a/b": [0, 2, 3],
    }
    assert document["spec"]["predictor"] == {"minReplicas": 1}


@pytest.mark.parametrize(
    ("operations", "code", "message"),
    [
        ({"op": "add"}, 400, "a list of operations"),
        ([{"op": "test", "path": "/a", "value": 2}], 422, "not the one tested"),
        ([{"op": "remove", "path": "/missing"}], 422, "the path does not exist"),
        ([{"op": "replace", "path": "/a"}], 400, "needs a value"),
        ([{"op": "frobnicate", "path": "/a"}], 400, "op must be"),
        ([{"op": "add", "path": "a", "value": 1}], 400, "starts with /"),
    ],
)
def test_a_json_patch_that_cannot_apply_is_refused_whole(operations: Any, code: int, message: str) -> None:
    with pytest.raises(StatusError, match=message) as refused:
        json_patch({"a": 1}, operations)
    assert refused.value.http_status == code


def test_patch_types_taken_and_strategic_merge_refused_naming_them() -> None:
    assert check_patch_type("application/merge-patch+json; charset=utf-8") == "application/merge-patch+json"
    assert check_patch_type("application/apply-patch+yaml") == "application/apply-patch+yaml"
    with pytest.raises(StatusError) as refused:
        check_patch_type("application/strategic-merge-patch+json")
    assert refused.value.http_status == 415 and refused.value.reason == "UnsupportedMediaType"
    for named in ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"):
        assert named in refused.value.message
    assert "built-in kinds" in refused.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{nope", "application/json", "is not JSON"),
        (b"a: [1", "application/yaml", "is not YAML"),
        (b"  ", "application/json", "is empty"),
        (b"\xff", "application/json", "UTF-8"),
    ],
)
def test_a_body_that_is_neither_json_nor_yaml_is_a_bad_request(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(StatusError, match=message) as refused:
        decode(body, content_type)
    assert refused.value.http_status == 400


def test_bodies_are_read_by_their_type() -> None:
    assert decode(b'{"a": 1}', "application/merge-patch+json") == {"a": 1}
    assert decode(b"a: 1\nb: [x]\n", "application/apply-patch+yaml") == {"a": 1, "b": ["x"]}


def test_a_shorthand_patched_over_a_stored_model_wins() -> None:
    obj = {"spec": {"predictor": {"model": {"storageUri": "old"}, "sklearn": {"storageUri": "new"}, "minReplicas": 1}}}
    assert shorthand_wins(obj)["spec"]["predictor"] == {"sklearn": {"storageUri": "new"}, "minReplicas": 1}
    alone = {"spec": {"predictor": {"model": {"storageUri": "m"}}}}
    assert shorthand_wins(alone) == {"spec": {"predictor": {"model": {"storageUri": "m"}}}}
    two = {"spec": {"predictor": {"model": {}, "sklearn": {}, "xgboost": {}}}}  # refused later, named by validation
    assert "model" in shorthand_wins(two)["spec"]["predictor"]


def test_an_applied_shorthand_is_read_as_model() -> None:
    config = {"metadata": {"name": "a"}, "spec": {"predictor": {"sklearn": {"storageUri": "/m"}, "minReplicas": 1}}}
    read = shorthand_as_model(config)
    assert read["spec"]["predictor"] == {
        "minReplicas": 1,
        "model": {"storageUri": "/m", "modelFormat": {"name": "sklearn"}},
    }
    assert "sklearn" in config["spec"]["predictor"]  # the configuration itself is left alone
    assert shorthand_as_model({"spec": {"predictor": {"model": {}}}}) == {"spec": {"predictor": {"model": {}}}}
