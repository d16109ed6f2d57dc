"""The rows an explain request asks about, and the features' names."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import ConfigurationError, InvalidInput
from wharf.explain.features import feature_names, feature_rows
from wharf.protocol.v2 import InferRequest, Tensor

NAMES = ["a", "b", "c"]


def test_a_matrix_or_one_row_is_taken_as_rows() -> None:
    matrix = feature_rows(InferRequest([Tensor("x", np.array([[1, 2, 3], [4, 5, 6]]))]), NAMES, "e")
    one = feature_rows(InferRequest([Tensor("input-0", np.array([1.5, 2, 3]))]), NAMES, "e")
    assert matrix.dtype == np.float64 and matrix.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert one.tolist() == [[1.5, 2, 3]]


def test_one_tensor_per_feature_is_taken_by_name_in_the_features_order() -> None:
    request = InferRequest([Tensor(n, np.array(v)) for n, v in (("c", [3, 6]), ("a", [1, 4]), ("b", [2, 5]))])
    assert feature_rows(request, NAMES, "e").tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([Tensor("x", np.ones((2, 4)))], "explainer 'e' takes 3 features per row (a, b, c), got 4"),
        ([Tensor("x", np.array([b"1", b"2", b"3"], dtype=object), "BYTES")], "takes numeric features, got BYTES"),
        ([Tensor("x", np.ones((2, 3, 1)))], "takes rows [rows, features], got shape [2, 3, 1]"),
        ([Tensor("a", np.ones(2)), Tensor("d", np.ones(2))], "missing feature(s) ['b', 'c']; unknown feature(s) ['d']"),
        ([Tensor(n, np.ones(1 + (n == "c"))) for n in NAMES], "differ in their number of rows"),
    ],
)
def test_rows_that_do_not_fit_are_refused_naming_the_problem(inputs: list[Tensor], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        feature_rows(InferRequest(inputs), NAMES, "e")
    assert message in refused.value.message


def test_names_come_from_the_config_then_what_is_found_then_their_positions() -> None:
    assert feature_names(2, ["x", "y"], ["h1", "h2"]) == ["x", "y"]
    assert feature_names(2, None, None, ["h1", "h2"]) == ["h1", "h2"]
    assert feature_names(3, None, None) == ["f0", "f1", "f2"]


def test_configured_names_must_name_every_feature() -> None:
    with pytest.raises(ConfigurationError, match="featureNames: 2 names given for 3 features"):
        feature_names(3, ["x", "y"])
