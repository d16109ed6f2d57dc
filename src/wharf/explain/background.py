"""Background rows: the data an explanation compares a row with, read from a CSV, Parquet or NPY file at any URI
Wharf's storage layer fetches (into its cache), once, when the explainer loads.

A CSV's first line is its header, unless every field of it reads as a number (then the file has none); a Parquet
file's columns are named; an NPY file is a 2-D array, unnamed. Every column must be numeric (NaN is a value: trees
route missing values). `sample_size` rows are kept, drawn without replacement with `seed`, in the file's order.
A directory (an unpacked archive, say) must hold exactly one such file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import csv, parquet

from wharf import storage
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.storage.uri import redact

#: File name endings read, by reader.
_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}


@dataclass(frozen=True, slots=True)
class Background:
    """Background rows [rows, features] as FP64, and the feature names the file gives (None where it has none)."""

    rows: np.ndarray
    feature_names: list[str] | None


def load(uri: str, sample_size: int, seed: int, settings: storage.StorageSettings | None = None) -> Background:
    """The background at `uri`, with at most `sample_size` rows sampled with `seed`."""
    path = _data_file(storage.resolve(uri, settings), uri)
    reader = _reader(path)
    try:
        rows, names = {"csv": _csv, "parquet": _parquet, "npy": _npy}[reader](path)
    except ConfigurationError:
        raise
    except Exception as e:  # the library's own words for a file it cannot read
        raise ModelLoadError(f"cannot read background data {redact(uri)} as {reader}: {e}") from None
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ConfigurationError(
            f"background data {redact(uri)} must be a table of rows and columns, got shape {list(rows.shape)}"
        )
    if rows.shape[0] > sample_size:
        chosen = np.sort(np.random.default_rng(seed).choice(rows.shape[0], sample_size, replace=False))
        rows = rows[chosen]
    return Background(np.ascontiguousarray(rows, dtype=np.float64), names)


def _data_file(path: Path, uri: str) -> Path:
    if not path.is_dir():
        return path
    found = [p for p in sorted(path.iterdir()) if p.is_file() and _suffix(p) in _SUFFIXES]
    if len(found) != 1:
        kinds = ", ".join(_SUFFIXES)
        raise ConfigurationError(
            f"background data {redact(uri)} is a directory holding {len(found)} data files ({kinds}); it needs one"
        )
    return found[0]


def _reader(path: Path) -> str:
    try:
        return _SUFFIXES[_suffix(path)]
    except KeyError:
        raise ConfigurationError(
            f"background data {path.name}: unknown file type; expected one of {', '.join(_SUFFIXES)}"
        ) from None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def _csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    table = csv.read_csv(path)
    if all(_is_number(name) for name in table.column_names):  # the first line was data
        table = csv.read_csv(path, read_options=csv.ReadOptions(autogenerate_column_names=True))
        return _numeric(table, path), None
    return _numeric(table, path), list(table.column_names)


def _parquet(path: Path) -> tuple[np.ndarray, list[str] | None]:
    table = parquet.read_table(path)
    return _numeric(table, path), list(table.column_names)


def _npy(path: Path) -> tuple[np.ndarray, list[str] | None]:
    rows = np.load(path, allow_pickle=False)
    if rows.dtype.kind not in "biuf":
        raise ConfigurationError(f"background data {path.name} holds {rows.dtype}, not numbers")
    return rows, None


def _numeric(table: pa.Table, path: Path) -> np.ndarray:
    """The table's columns side by side as FP64; a column of anything but numbers is refused, naming it."""
    columns = []
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise ConfigurationError(
                f"background data {path.name}: column '{name}' holds {kind}, not numbers; every column must be a "
                "model input"
            )
        columns.append(column.to_numpy(zero_copy_only=False).astype(np.float64))
    return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
