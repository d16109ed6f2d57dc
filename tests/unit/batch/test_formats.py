"""Reading inputs in chunks and writing parts: every format in and out, chunk boundaries, bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from wharf.batch import formats
from wharf.batch.formats import BadRow
from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings

SETTINGS = StorageSettings()


def table(rows: int) -> pa.Table:
    values = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3) / 4
    return pa.table({str(i): values[:, i] for i in range(3)})


def read_all(uri: str, chunk_rows: int, fmt: str | None = None) -> tuple[pa.Table, list[int], list[BadRow]]:
    source = formats.open_source(uri, fmt, SETTINGS)
    tables, rows, bad = [], [], []
    for chunk in formats.plan(source, chunk_rows):
        read, numbers, refused = formats.read_chunk(source, chunk)
        tables.append(read)
        rows += numbers.tolist()
        bad += refused
    return pa.concat_tables(tables), rows, bad


@pytest.mark.parametrize("fmt", list(formats.FORMATS))
def test_every_format_round_trips_in_chunks(tmp_path: Path, fmt: str) -> None:
    expected = table(10)
    path = tmp_path / f"in{formats.FORMATS[fmt]}"
    fs, _ = formats.filesystem(str(tmp_path), SETTINGS)
    formats.write_part(expected, fs, str(path), fmt)
    assert not list(tmp_path.glob("*.partial"))
    read, rows, bad = read_all(str(path), chunk_rows=3)
    assert read.equals(expected) and rows == list(range(10)) and bad == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npy"])
def test_chunks_cut_by_rows_and_number_them_across_the_parts_of_a_directory(tmp_path: Path, fmt: str) -> None:
    fs, _ = formats.filesystem(str(tmp_path), SETTINGS)
    for part, rows in (("a", 7), ("b", 2)):
        formats.write_part(table(rows), fs, str(tmp_path / f"{part}{formats.FORMATS[fmt]}"), fmt)
    source = formats.open_source(str(tmp_path), fmt, SETTINGS)
    chunks = formats.plan(source, 3)
    assert [(c.index, c.first_row, c.rows) for c in chunks] == [(0, 0, 3), (1, 3, 3), (2, 6, 1), (3, 7, 2)]
    assert [Path(c.path).name[0] for c in chunks] == ["a", "a", "a", "b"]


@pytest.mark.parametrize("ending", [b"\n", b""])
@pytest.mark.parametrize("block", [1, 5, 4096])
def test_text_chunks_are_the_same_whichever_blocks_the_scan_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: bytes, block: int
) -> None:
    """The scan keeps only the chunks' bounds: one block at a time (its memory stays flat with the file's size),
    with chunks and lines across block ends, a last line with or without its line end."""
    monkeypatch.setattr(formats, "_SCAN_BYTES", block)
    lines = [f"{i},{i * 10}".encode() for i in range(11)]
    (tmp_path / "in.csv").write_bytes(b"a,b\n" + b"\n".join(lines) + ending)
    source = formats.open_source(str(tmp_path / "in.csv"), None, SETTINGS)
    chunks = formats.plan(source, 4)
    assert [(c.first_row, c.rows) for c in chunks] == [(0, 4), (4, 4), (8, 3)]
    data = (tmp_path / "in.csv").read_bytes()
    assert [data[c.start : c.stop].splitlines() for c in chunks] == [lines[0:4], lines[4:8], lines[8:11]]
    assert read_all(str(tmp_path / "in.csv"), 4)[0].column("b").to_pylist() == [i * 10.0 for i in range(11)]


def test_parquet_chunks_are_whole_row_groups(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table(10), tmp_path / "in.parquet", row_group_size=2)
    chunks = formats.plan(formats.open_source(str(tmp_path / "in.parquet"), None, SETTINGS), 3)
    assert [(c.first_row, c.rows) for c in chunks] == [(0, 4), (4, 4), (8, 2)]
    assert read_all(str(tmp_path / "in.parquet"), 3)[0].equals(table(10))


def test_csv_bad_rows_are_left_out_with_their_row_and_reason(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b\n1,2\n3\n4,5\nx,6\n7,8,9\n10,11\n")
    read, rows, bad = read_all(str(tmp_path / "in.csv"), chunk_rows=4)
    assert read.column("a").to_pylist() == [1.0, 4.0, 10.0]
    assert rows == [0, 2, 5]
    assert bad == [
        BadRow(1, "1 values, expected 2"),
        BadRow(3, "column 'a': 'x' is not double"),
        BadRow(4, "3 values, expected 2"),
    ]


def test_jsonl_bad_rows_are_left_out_with_their_row_and_reason(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"a": "x"}\nnot json\n{"a": 2.5}\n')
    read, rows, bad = read_all(str(tmp_path / "in.jsonl"), chunk_rows=10)
    assert read.column("a").to_pylist() == [1.0, 2.5] and rows == [0, 3]
    assert [b.row for b in bad] == [1, 2]


def test_format_from_the_extension_or_refused(tmp_path: Path) -> None:
    assert formats.format_of("x/data.PQ", None) == "parquet"
    with pytest.raises(ConfigurationError, match="--format"):
        formats.format_of("data.txt", None)
    with pytest.raises(ConfigurationError, match="unknown format 'xls'"):
        formats.format_of("data.csv", "xls")
    with pytest.raises(ConfigurationError, match="does not exist"):
        formats.open_source(str(tmp_path / "missing.csv"), None, SETTINGS)


def test_npy_output_needs_numbers(tmp_path: Path) -> None:
    fs, _ = formats.filesystem(str(tmp_path), SETTINGS)
    with pytest.raises(ConfigurationError, match="numeric"):
        formats.write_part(pa.table({"a": ["x"]}), fs, str(tmp_path / "out.npy"), "npy")


def test_npy_rows_are_read_by_byte_range_one_value_a_row_or_several(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.arange(5, dtype=np.int32))
    np.save(tmp_path / "cube.npy", np.arange(24, dtype=np.float32).reshape(4, 3, 2))
    flat, rows, _ = read_all(str(tmp_path / "flat.npy"), chunk_rows=2)
    assert flat.column("0").to_pylist() == [0, 1, 2, 3, 4] and rows == [0, 1, 2, 3, 4]
    cube = read_all(str(tmp_path / "cube.npy"), chunk_rows=3)[0]
    assert cube.num_columns == 6 and cube.column("5").to_pylist() == [5.0, 11.0, 17.0, 23.0]
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((3, 2))))
    with pytest.raises(ConfigurationError, match="C-ordered"):
        formats.open_source(str(tmp_path / "fortran.npy"), None, SETTINGS)
