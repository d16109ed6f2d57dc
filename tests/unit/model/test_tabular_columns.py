"""Tabular models take named columns: when a request is read as columns, and what is refused."""

from pathlib import Path

import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.model.runtimes.tabular import Method, TabularModel
from wharf.protocol.v2 import InferRequest, Tensor

COLUMNS = ["a", "b", "c"]


def _model(columns: list[str] | None = COLUMNS) -> TabularModel:
    model = TabularModel("m", Path("unused"))
    model.n_features, model.columns = 3, columns
    model.methods = {"predict": Method(lambda features: features, "FP64", [-1, 3])}
    return model


def _features(model: TabularModel, *tensors: Tensor, **parameters: object) -> np.ndarray:
    return model.features(InferRequest(list(tensors), parameters=dict(parameters)))


def test_named_columns_become_the_matrix_in_the_fitted_order() -> None:
    columns = [Tensor("c", np.array([3.0, 6.0])), Tensor("a", np.array([1, 4])), Tensor("b", [[2], [5]])]
    found = _features(_model(), *columns)
    assert found.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_a_matrix_and_a_row_are_still_positional() -> None:
    # V1 rows of one unnamed input arrive named after the first declared input: a row of every column is a row
    assert _features(_model(), Tensor("a", np.array([1.0, 2.0, 3.0]))).tolist() == [[1, 2, 3]]
    assert _features(_model(), Tensor("input-0", np.ones((2, 3)))).shape == (2, 3)


def test_pd_reads_even_one_input_as_a_column() -> None:
    with pytest.raises(InvalidInput, match=r"missing column\(s\) \['b', 'c'\]"):
        _features(_model(), Tensor("a", np.array([1.0, 2.0, 3.0])), content_type="pd")
    per_input = Tensor("a", np.array([1.0, 2.0, 3.0]), parameters={"content_type": "pd"})
    with pytest.raises(InvalidInput, match=r"missing column\(s\) \['b', 'c'\]"):
        _features(_model(), per_input)


def test_without_fitted_names_pd_columns_go_in_the_order_sent() -> None:
    tensors = [Tensor(name, np.array([i, i])) for i, name in enumerate("zyx")]
    assert _features(_model(None), *tensors, content_type="pd").tolist() == [[0, 1, 2], [0, 1, 2]]
    with pytest.raises(InvalidInput, match=r"takes one input tensor, got 3 \(named columns need the parameter"):
        _features(_model(None), *tensors)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ([Tensor("a", [1.0]), Tensor("b", [1.0]), Tensor("d", [1.0])], r"missing column\(s\) \['c'\]; unknown column"),
        ([Tensor("a", [1.0]), Tensor("b", [1.0, 2.0]), Tensor("c", [1.0])], "column 'b' has 2 rows, column 'a' has 1"),
        ([Tensor("a", [[1.0, 2.0]]), Tensor("b", [1.0]), Tensor("c", [1.0])], r"column 'a' must be 1-D \[rows\]"),
        ([Tensor("a", [1.0]), Tensor("b", [1.0]), Tensor("c", np.array([b"x"], dtype=object))], "numeric input"),
    ],
)
def test_bad_columns_are_refused_by_name(tensors: list[Tensor], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _features(_model(), *tensors)
