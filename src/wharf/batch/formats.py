"""Reading inputs in chunks and writing outputs in parts, with Arrow: CSV, Parquet, JSON Lines and NPY.

An input is one file or a directory of parts (its files of the format's extension, in name order), a local path or
any URI the storage layer opens (s3://, gs://, ...). `plan` cuts it into chunks of about `chunk_rows` rows without
loading it: Parquet by its row groups' metadata, NPY by its header (rows read by byte range), CSV and JSON
Lines by one pass over their bytes that counts the line ends, keeping only the chunks' bounds (a text chunk is a byte
range of whole lines; a quoted CSV value holding a line break is not supported). Each chunk knows the input row
number of its first row, so that a row's id is the same whichever worker reads it.

`read_chunk` reads one chunk into a table with the types the plan inferred from the input's start. A row that does
not parse (a value not of its column's type, a wrong column count) is left out and reported as a `BadRow` with its
row number and the reason; only a chunk holding such a row pays for finding it (it is read again as text).
`write_part` writes a table as one part, atomically where the store allows (local files: a temporary name, then a
rename; object stores write whole objects).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings
from wharf.storage.stores import connect
from wharf.storage.uri import LOCAL_SCHEMES, scheme

FORMATS = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "npy": ".npy"}
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".npy": "npy"}  # fmt: skip
_SCAN_BYTES = 16 << 20  # a text input is scanned for line ends this many bytes at a time
_INFER_BYTES = 1 << 20  # column types are inferred from the first rows of up to this many bytes


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows `first_row`..`first_row + rows` of the input, read from `path` at `start`..`stop` (bytes for text
    formats, the file's own row positions for Parquet and NPY)."""

    index: int
    path: str
    first_row: int
    rows: int
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Source:
    """An opened input: its filesystem, format, files, and the schema every chunk is read with."""

    fs: AbstractFileSystem
    format: str
    files: tuple[str, ...]
    schema: pa.Schema
    header: bytes = b""  # a CSV's header line, put before each chunk's bytes


@dataclass(frozen=True, slots=True)
class BadRow:
    row: int
    reason: str


def format_of(path: str, given: str | None) -> str:
    """The format named (`csv`, `parquet`, `jsonl`, `npy`) or, when none is, the one of `path`'s extension."""
    if given is not None:
        if given not in FORMATS:
            raise ConfigurationError(f"--format: unknown format {given!r}; known: {', '.join(FORMATS)}")
        return given
    found = _EXTENSIONS.get(posixpath.splitext(path)[1].lower())
    if found is None:
        raise ConfigurationError(f"{path}: cannot tell its format from its extension; pass --format")
    return found


def filesystem(uri: str, settings: StorageSettings, create: bool = False) -> tuple[AbstractFileSystem, str]:
    """The filesystem holding `uri` and its path there; a local directory to write to is made when `create`."""
    if create and scheme(uri) in LOCAL_SCHEMES:
        fs = LocalFileSystem()
        path = uri.removeprefix("file://")
        fs.makedirs(path, exist_ok=True)
        return fs, fs._strip_protocol(path)
    if scheme(uri) == "" and not os.path.exists(uri):
        raise ConfigurationError(f"{uri} does not exist")
    return connect(uri, settings)


def open_source(uri: str, fmt: str | None, settings: StorageSettings, ignored: tuple[str, ...] = ()) -> Source:
    """The input at `uri`, a file or a directory of parts (but the files named in `ignored`; `.json` files are taken
    only when named), with the schema of its first rows."""
    fs, path = filesystem(uri, settings)
    if fs.isdir(path):
        if fmt is None:
            raise ConfigurationError(f"{uri}: a directory of parts needs --format")
        extensions = {e for e, f in _EXTENSIONS.items() if f == fmt} - {".json"}
        files = tuple(
            sorted(
                p
                for p in fs.find(path)
                if posixpath.splitext(p)[1].lower() in extensions and posixpath.basename(p) not in ignored
            )
        )
        if not files:
            raise ConfigurationError(f"{uri}: no {fmt} files in this directory")
    else:
        fmt = format_of(path, fmt)
        files = (path,)
    header, schema = _schema(fs, files[0], fmt)
    return Source(fs, fmt, files, schema, header)


def _schema(fs: AbstractFileSystem, path: str, fmt: str) -> tuple[bytes, pa.Schema]:
    if fmt == "parquet":
        with fs.open(path, "rb") as f:
            return b"", pq.read_schema(f)
    if fmt == "npy":
        header = _npy_header(fs, path)
        return b"", pa.schema([(str(i), pa.from_numpy_dtype(header.dtype)) for i in range(header.width)])
    with fs.open(path, "rb") as f:
        head = f.read(_INFER_BYTES)
    if fmt == "csv":
        header, _, rest = head.partition(b"\n")
        sample = header + b"\n" + rest[: rest.rfind(b"\n") + 1]
        table = pa_csv.read_csv(
            io.BytesIO(sample), read_options=pa_csv.ReadOptions(use_threads=False), parse_options=_csv_parse([])
        )
        return header + b"\n", _widened(_numbers_mostly(table).schema)
    return b"", _json_schema(head[: head.rfind(b"\n") + 1] or head)


def _json_schema(sample: bytes) -> pa.Schema:
    """The columns of the objects in `sample` (lines that are not objects aside): numbers where most values are."""
    seen: dict[str, list[Any]] = {}
    for line in sample.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            for key, value in row.items():
                seen.setdefault(key, []).append(value)
    fields = []
    for key, values in seen.items():
        numbers = sum(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numbers > len(values) / 2:
            fields.append((key, pa.float64()))
        else:
            inferred = pa.array([v for v in values if v is not None] or [None]).type
            fields.append((key, pa.string() if pa.types.is_null(inferred) else inferred))
    return pa.schema(fields)


_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|inf|NaN|Inf)\s*$"


def _numbers_mostly(table: pa.Table) -> pa.Table:
    """`table` with its text columns whose values are mostly numbers (the others bad ones) as floats."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            values = column.drop_null()
            numbers = pc.sum(pc.match_substring_regex(values, _NUMBER)).as_py() or 0
            if len(values) and numbers > len(values) / 2:
                column = pa.nulls(len(column), pa.float64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _widened(schema: pa.Schema) -> pa.Schema:
    """Integers read as floats (a later row may hold a fraction), nulls as text."""
    fields = []
    for field in schema:
        if pa.types.is_integer(field.type):
            field = field.with_type(pa.float64())
        elif pa.types.is_null(field.type):
            field = field.with_type(pa.string())
        fields.append(field)
    return pa.schema(fields)


def plan(source: Source, chunk_rows: int) -> list[Chunk]:
    """The chunks of `source`, in input order, each of up to `chunk_rows` rows (Parquet: whole row groups)."""
    chunks: list[Chunk] = []
    first_row = 0
    for path in source.files:
        for start, stop, rows in _ranges(source, path, chunk_rows):
            chunks.append(Chunk(len(chunks), path, first_row, rows, start, stop))
            first_row += rows
    return chunks


def _ranges(source: Source, path: str, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    fs, fmt = source.fs, source.format
    if fmt == "npy":
        total = _npy_header(fs, path).rows
        for start in range(0, total, chunk_rows):
            stop = min(start + chunk_rows, total)
            yield start, stop, stop - start
        return
    if fmt == "parquet":
        with fs.open(path, "rb") as f:
            metadata = pq.ParquetFile(f).metadata
        start = rows = 0
        for group in range(metadata.num_row_groups):
            rows += metadata.row_group(group).num_rows
            if rows >= chunk_rows or group == metadata.num_row_groups - 1:
                yield start, start + rows, rows
                start, rows = start + rows, 0
        return
    yield from _line_ranges(fs, path, chunk_rows, skip_header=fmt == "csv")


def _line_ranges(
    fs: AbstractFileSystem, path: str, chunk_rows: int, skip_header: bool
) -> Iterator[tuple[int, int, int]]:
    """Byte ranges of up to `chunk_rows` whole lines each, found by one pass over the file that keeps only the
    chunks' bounds (memory: one block and its line ends, whatever the file's size)."""
    start, rows, offset, last = 0, 0, 0, b"\n"
    header = skip_header
    with fs.open(path, "rb") as f:
        while block := f.read(_SCAN_BYTES):
            ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + offset + 1
            if header and len(ends):
                start, ends, header = int(ends[0]), ends[1:], False
            while len(ends) >= chunk_rows - rows:
                stop = int(ends[chunk_rows - rows - 1])
                yield start, stop, chunk_rows
                start, ends, rows = stop, ends[chunk_rows - rows :], 0
            rows += len(ends)
            offset += len(block)
            last = block[-1:]
    if last != b"\n" and offset > start and not header:  # a last line without its line end
        rows += 1
    if rows:
        yield start, offset, rows


@dataclass(frozen=True, slots=True)
class _NpyHeader:
    dtype: np.dtype
    rows: int
    width: int  # values a row
    offset: int  # where the data starts

    def row_bytes(self) -> int:
        return self.width * self.dtype.itemsize


def _npy_header(fs: AbstractFileSystem, path: str) -> _NpyHeader:
    """What an NPY file's header says; its rows are then read by byte ranges (local or remote alike)."""
    with fs.open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read(f)
        offset = f.tell()
    if fortran_order or dtype.hasobject or not shape:
        raise ConfigurationError(f"{path}: an NPY input must be a C-ordered numeric array of rows")
    return _NpyHeader(dtype, shape[0], int(np.prod(shape[1:])), offset)


# -- reading a chunk --------------------------------------------------------------------------------------------


def read_chunk(source: Source, chunk: Chunk) -> tuple[pa.Table, np.ndarray, list[BadRow]]:
    """The rows of `chunk` that parse, their input row numbers, and the rows that do not."""
    fs, fmt = source.fs, source.format
    if fmt == "parquet":
        with fs.open(chunk.path, "rb") as f:
            table = _parquet_rows(pq.ParquetFile(f), chunk.start, chunk.stop)
        return table, np.arange(chunk.first_row, chunk.first_row + chunk.rows), []
    if fmt == "npy":
        header = _npy_header(fs, chunk.path)
        with fs.open(chunk.path, "rb") as f:
            f.seek(header.offset + chunk.start * header.row_bytes())
            data = f.read(chunk.rows * header.row_bytes())
        array = np.frombuffer(data, header.dtype).reshape(chunk.rows, header.width)
        table = pa.Table.from_arrays(list(array.T), schema=source.schema)
        return table, np.arange(chunk.first_row, chunk.first_row + chunk.rows), []
    with fs.open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.stop - chunk.start)
    read = _read_csv if fmt == "csv" else _read_jsonl
    table, skipped, bad = read(source, data, chunk.first_row)
    rows = np.arange(chunk.first_row, chunk.first_row + chunk.rows)
    return table, (np.delete(rows, [r - chunk.first_row for r in skipped]) if skipped else rows), bad


def _parquet_rows(file: pq.ParquetFile, start: int, stop: int) -> pa.Table:
    groups, first = [], 0
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if first >= start and first + rows <= stop:
            groups.append(group)
        first += rows
    return file.read_row_groups(groups, use_threads=False)


def _csv_parse(bad: list[BadRow], first_row: int = 0) -> pa_csv.ParseOptions:
    def handle(row: Any) -> str:  # `number` (known when read on one thread) counts the header as line 1
        bad.append(
            BadRow(first_row + (row.number or 0) - 2, f"{row.actual_columns} values, expected {row.expected_columns}")
        )
        return "skip"

    return pa_csv.ParseOptions(invalid_row_handler=handle, ignore_empty_lines=False)


def _read_csv(source: Source, data: bytes, first_row: int) -> tuple[pa.Table, list[int], list[BadRow]]:
    bad: list[BadRow] = []
    try:
        table = pa_csv.read_csv(
            io.BytesIO(source.header + data),
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=_csv_parse(bad, first_row),
            convert_options=pa_csv.ConvertOptions(column_types=source.schema, strings_can_be_null=True),
        )
        return table, [b.row for b in bad], bad
    except pa.ArrowInvalid:  # a value that does not parse: read as text, then find the rows
        bad.clear()
        text = pa_csv.read_csv(
            io.BytesIO(source.header + data),
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=_csv_parse(bad, first_row),
            convert_options=pa_csv.ConvertOptions(
                column_types={f.name: pa.string() for f in source.schema}, strings_can_be_null=True
            ),
        )
        skipped = [b.row for b in bad]
        rows = np.delete(np.arange(first_row, first_row + len(text) + len(bad)), [r - first_row for r in skipped])
        return _typed(text, source.schema, rows, bad, skipped)


def _typed(
    text: pa.Table, schema: pa.Schema, rows: np.ndarray, bad: list[BadRow], skipped: list[int]
) -> tuple[pa.Table, list[int], list[BadRow]]:
    """`text` cast to `schema`, leaving out (into `bad`) the rows holding a value that does not cast."""
    failing = np.zeros(len(text), bool)
    reasons: dict[int, str] = {}
    for field in schema:
        column = text.column(field.name).combine_chunks()
        try:
            column.cast(field.type)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for i, value in enumerate(column.to_pylist()):
            if value is None or value == "":
                continue
            try:
                pa.array([value]).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                failing[i] = True
                reasons.setdefault(i, f"column '{field.name}': {value!r} is not {field.type}")
    for i in np.flatnonzero(failing):
        bad.append(BadRow(int(rows[i]), reasons[int(i)]))
    kept = text.filter(pa.array(~failing)).cast(schema)
    bad.sort(key=lambda b: b.row)
    return kept, skipped + [int(rows[i]) for i in np.flatnonzero(failing)], bad


def _read_jsonl(source: Source, data: bytes, first_row: int) -> tuple[pa.Table, list[int], list[BadRow]]:
    options = pa_json.ParseOptions(explicit_schema=source.schema, unexpected_field_behavior="error")
    try:
        return pa_json.read_json(io.BytesIO(data), parse_options=options), [], []
    except pa.ArrowInvalid:  # find the rows that do not parse, one line at a time
        pass
    good, skipped, bad = [], [], []
    for i, line in enumerate(data.splitlines()):
        try:
            good.append(pa_json.read_json(io.BytesIO(line), parse_options=options))
            if len(good[-1]) != 1:
                raise pa.ArrowInvalid("not one JSON object")
        except (pa.ArrowInvalid, ValueError) as e:
            good = good[:-1] if good and len(good[-1]) != 1 else good
            skipped.append(first_row + i)
            bad.append(BadRow(first_row + i, str(e).splitlines()[0]))
    table = pa.concat_tables(good) if good else source.schema.empty_table()
    return table, skipped, bad


# -- writing a part ---------------------------------------------------------------------------------------------


def write_part(table: pa.Table, fs: AbstractFileSystem, path: str, fmt: str) -> None:
    """Write `table` at `path` in `fmt`, whole or not at all where the store allows."""
    buffer = io.BytesIO()
    if fmt == "csv":
        pa_csv.write_csv(table, buffer)
    elif fmt == "parquet":
        pq.write_table(table, buffer)
    elif fmt == "jsonl":
        _write_jsonl(table, buffer)
    else:
        np.save(buffer, _matrix(table))
    write_atomically(fs, path, buffer.getvalue())


def write_atomically(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    if isinstance(fs, LocalFileSystem):
        temporary = f"{path}.partial"
        with fs.open(temporary, "wb") as f:
            f.write(data)
        fs.mv(temporary, path)
    else:
        with fs.open(path, "wb") as f:
            f.write(data)


def _write_jsonl(table: pa.Table, out: io.BytesIO) -> None:
    for batch in table.to_batches():
        for row in batch.to_pylist():
            out.write(json.dumps(row, separators=(",", ":")).encode())
            out.write(b"\n")


def _matrix(table: pa.Table) -> np.ndarray:
    """The table's columns side by side, as one 2-D array of their common numeric type."""
    columns = [c.to_numpy() for c in table.columns]
    if any(c.dtype.kind not in "biuf" for c in columns):
        raise ConfigurationError("NPY output takes numeric columns only; choose another --output-format")
    return np.column_stack(columns) if columns else np.zeros((len(table), 0))
