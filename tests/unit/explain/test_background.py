"""Background rows from CSV, Parquet and NPY files, sampled with a seed, named by their header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import parquet

from wharf.errors import ConfigurationError
from wharf.explain import background

ROWS = np.arange(40, dtype=np.float64).reshape(10, 4) / 4


def _csv(path: Path, header: str | None = "a,b,c,d") -> Path:
    lines = ([header] if header else []) + [",".join(str(float(v)) for v in row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_gives_its_rows_and_its_header(tmp_path: Path) -> None:
    found = background.load(str(_csv(tmp_path / "bg.csv")), 100, 0)
    assert found.feature_names == ["a", "b", "c", "d"]
    assert found.rows.dtype == np.float64
    np.testing.assert_array_equal(found.rows, ROWS)


def test_a_csv_whose_first_line_is_numbers_has_no_header(tmp_path: Path) -> None:
    found = background.load(str(_csv(tmp_path / "bg.csv", header=None)), 100, 0)
    assert found.feature_names is None
    np.testing.assert_array_equal(found.rows, ROWS)


def test_parquet_and_npy_read_too(tmp_path: Path) -> None:
    table = pa.table({name: ROWS[:, i] for i, name in enumerate("wxyz")})
    parquet.write_table(table, tmp_path / "bg.parquet")
    np.save(tmp_path / "bg.npy", ROWS)
    from_parquet = background.load(str(tmp_path / "bg.parquet"), 100, 0)
    from_npy = background.load(f"file://{tmp_path / 'bg.npy'}", 100, 0)
    assert from_parquet.feature_names == ["w", "x", "y", "z"]
    assert from_npy.feature_names is None
    np.testing.assert_array_equal(from_parquet.rows, ROWS)
    np.testing.assert_array_equal(from_npy.rows, ROWS)


def test_sample_size_rows_are_drawn_with_the_seed_in_the_files_order(tmp_path: Path) -> None:
    uri = str(_csv(tmp_path / "bg.csv"))
    first, again, other = (background.load(uri, 4, seed) for seed in (1, 1, 2))
    assert first.rows.shape == (4, 4)
    np.testing.assert_array_equal(first.rows, again.rows)
    assert not np.array_equal(first.rows, other.rows)
    assert list(first.rows[:, 0]) == sorted(first.rows[:, 0])  # kept in the file's order
    assert all(any(np.array_equal(row, kept) for kept in ROWS) for row in first.rows)


def test_a_directory_with_one_data_file_reads_it(tmp_path: Path) -> None:
    _csv(tmp_path / "data.csv")
    (tmp_path / "README.md").write_text("about the data")
    assert background.load(str(tmp_path), 100, 0).rows.shape == (10, 4)


def test_a_text_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bg.csv"
    path.write_text("a,species\n1.0,setosa\n2.0,virginica\n")
    with pytest.raises(ConfigurationError, match="column 'species' holds string, not numbers"):
        background.load(str(path), 100, 0)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bg.json", b"[]", "unknown file type; expected one of .csv"),
        ("bg.npy", None, "must be a table of rows and columns, got shape [4]"),
    ],
)
def test_files_that_are_not_tables_are_refused(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is None:
        np.save(path, np.arange(4.0))
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as refused:
        background.load(str(path), 100, 0)
    assert message in refused.value.message


def test_a_directory_of_several_data_files_is_refused(tmp_path: Path) -> None:
    _csv(tmp_path / "one.csv")
    _csv(tmp_path / "two.csv")
    with pytest.raises(ConfigurationError, match="holding 2 data files"):
        background.load(str(tmp_path), 100, 0)
