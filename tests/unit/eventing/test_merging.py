"""Merging requests of a partition into one call and splitting the answer back."""

from __future__ import annotations

import pytest

from wharf.eventing.merging import Unsplittable, merge, signature, split
from wharf.eventing.messages import Request


def v2(rows: int, ident: str, nested: bool = False, **extra: object) -> Request:
    data = [[float(rows)] * 2 for _ in range(rows)] if nested else [float(rows)] * (2 * rows)
    body = {"inputs": [{"name": "x", "shape": [rows, 2], "datatype": "FP32", "data": data}], **extra}
    return Request("v2", body, ident)


def test_requests_of_one_shape_share_a_signature() -> None:
    assert signature(v2(1, "a")) == signature(v2(3, "b")) == signature(v2(2, "c", id="c"))
    assert signature(v2(1, "a")) != signature(v2(1, "a", parameters={"k": 1}))
    assert signature(v2(1, "a", parameters={"k": 1})) == signature(v2(1, "b", parameters={"k": 1}))
    assert signature(Request("v1", {"instances": [[1]]}, "a")) == signature(
        Request("v1", {"instances": [[2], [3]]}, "b")
    )


@pytest.mark.parametrize(
    "request_",
    [
        Request(
            "v2",
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2], "parameters": {}}]},
            "a",
        ),
        Request("v2", {"inputs": [{"name": "x", "shape": [], "datatype": "FP32", "data": [1]}]}, "a"),
        Request("v2", {"inputs": [{"name": "x", "shape": [0, 2], "datatype": "FP32", "data": []}]}, "a"),
        Request("v2", {"inputs": [], "id": "a"}, "a"),
        Request("v2", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "other": 1}, "a"),
        Request("v1", {"instances": [[1]], "signature_name": "s"}, "a"),
        Request("v1", {"instances": []}, "a"),
    ],
)
def test_requests_that_are_sent_alone(request_: Request) -> None:
    assert signature(request_) is None


def test_v2_rows_concatenate_and_split_back() -> None:
    requests = [v2(1, "a"), v2(2, "b"), v2(1, "c")]
    merged = merge(requests)
    assert merged["inputs"][0]["shape"] == [4, 2] and len(merged["inputs"][0]["data"]) == 8
    answer = {
        "model_name": "m",
        "outputs": [
            {"name": "label", "shape": [4], "datatype": "INT64", "data": [1, 2, 3, 4]},
            {"name": "proba", "shape": [4, 2], "datatype": "FP32", "data": [[1, 1], [2, 2], [3, 3], [4, 4]]},
        ],
    }
    a, b, c = split(requests, answer)
    assert a["id"] == "a" and a["model_name"] == "m"
    assert b["outputs"][0] == {"name": "label", "shape": [2], "datatype": "INT64", "data": [2, 3]}
    assert b["outputs"][1]["shape"] == [2, 2] and b["outputs"][1]["data"] == [[2, 2], [3, 3]]
    assert c["outputs"][0]["data"] == [4]


def test_nested_rows_merge_too() -> None:
    merged = merge([v2(1, "a", nested=True), v2(2, "b", nested=True)])
    assert merged["inputs"][0]["data"] == [[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]


def test_v1_instances_concatenate_and_split_back() -> None:
    requests = [Request("v1", {"instances": [[1], [2]]}, "a"), Request("v1", {"instances": [[3]]}, "b")]
    assert merge(requests) == {"instances": [[1], [2], [3]]}
    assert split(requests, {"predictions": [10, 20, 30]}) == [{"predictions": [10, 20]}, {"predictions": [30]}]


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"predictions": [1]},
        {"outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}]},
        {"outputs": [{"name": "y", "shape": [3], "datatype": "INT64", "data": [1, 2]}]},
    ],
)
def test_answers_that_do_not_split(answer: object) -> None:
    with pytest.raises(Unsplittable):
        split([v2(1, "a"), v2(2, "b")], answer)


def test_the_v1_answer_must_hold_a_prediction_per_instance() -> None:
    requests = [Request("v1", {"instances": [[1]]}, "a"), Request("v1", {"instances": [[3]]}, "b")]
    with pytest.raises(Unsplittable, match="2 predictions"):
        split(requests, {"predictions": [1, 2, 3]})
