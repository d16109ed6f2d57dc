"""Checking answers: labelled rows read from CSV, predictions compared with labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.errors import ConfigurationError, InvalidInput
from wharf.kfp.evaluation import accuracy, matches, predictions, read_labelled_rows


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    return path


def test_rows_are_features_in_order_and_a_label_from_its_column(tmp_path: Path) -> None:
    rows = read_labelled_rows(_csv(tmp_path, "a,class,b\n1,setosa,2.5\n3,virginica,-4\n"), "class")
    assert rows.features == [[1.0, 2.5], [3.0, -4.0]]
    assert rows.labels == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "label_column: 'label' is not a column of .* \\(it has \\['a', 'b'\\]\\)"),
        ("", "label_column: 'label' is not a column of .* \\(it has none\\)"),
        ("a,label\n1,0\n2\n", "line 3: 1 values for 2 columns"),
        ("a,label\nx,0\n", "line 2: a feature that is not a number"),
        ("a,label\n", "has no rows to check"),
    ],
)
def test_rows_that_cannot_be_checked_are_refused_naming_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_labelled_rows(_csv(tmp_path, text))


def test_a_prediction_matches_its_label_as_a_number_or_as_text() -> None:
    assert matches(1, "1") and matches(1, "1.0") and matches(0.5, "0.5") and matches("setosa", "setosa")
    assert not matches(1, "2") and not matches(1, "one") and not matches("setosa", "virginica")
    assert not matches(True, "1.0")  # a boolean is no class index
    assert accuracy([0, 1, 2, 2], ["0", "1", "2", "1"]) == 0.75
    with pytest.raises(InvalidInput, match="3 predictions for 2 labelled rows"):
        accuracy([0, 1, 2], ["0", "1"])


def test_a_batch_of_no_rows_is_refused_before_anything_is_asked() -> None:
    with pytest.raises(ConfigurationError, match="batch_size: 0 must be at least 1"):
        predictions("iris", "iris-predictor-00001", [[1.0]], control_url="http://127.0.0.1:9", batch_size=0)
