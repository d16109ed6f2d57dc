"""The monitor's store: one SQLite file (WAL) holding, per model, its columns, the rows of its logged inferences,
its reference rows by data tag and the ground-truth labels of logged rows. It implements `wharf.monitor.data.Rows`.

A row is one record of a payload (a request of n rows makes n rows, numbered within their request). Its numbers
are kept as a float64 blob per side (inputs, outputs) and its text columns as a JSON list, so that reading 100,000
rows into a DataFrame is one query, one `b"".join` and one `np.frombuffer` per side (0.2 s measured, on a busy
two-core machine).

Writes go through one writer thread: logged rows are queued (`add_exchange` costs the encoding of its rows and a
queue put, no I/O) and written in transactions of up to `batch_rows`, at least every `flush_interval_s`; past
`max_pending_rows` waiting rows an exchange is refused (`ServerBusy`). Uploads, labels and renames are jobs for the
same thread, run after the rows queued before them, and awaited. Readers (`Rows`) have a connection per thread.

Retention (logged rows only; reference rows stay): past `retention_rows` rows of a model its oldest
go, after each write; rows older than `retention_days` go, checked every minute. Labels go with their rows. What
retention dropped is counted per model (kept in the file) and in `counts`.

Columns are set and changed (`wharf.monitor.schema`) on the event loop's thread only; the writer persists them in
the order they changed, before the rows that need them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from wharf.errors import InvalidInput, NotFound, ServerBusy
from wharf.monitor.data import ground_truth
from wharf.monitor.payloads import Table
from wharf.monitor.schema import ModelSchema, Side, read_dtype
from wharf.monitor.settings import MonitorSettings

log = logging.getLogger("wharf.monitor")

AGE_CHECK_S = 60.0  # how often rows past `retention_days` are looked for
_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    key INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, columns TEXT NOT NULL, dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inferences (
    seq INTEGER PRIMARY KEY, model INTEGER NOT NULL, request_id TEXT NOT NULL, row INTEGER NOT NULL,
    time REAL NOT NULL, status INTEGER NOT NULL, namespace TEXT NOT NULL, revision TEXT NOT NULL,
    inputs BLOB NOT NULL, input_texts BLOB, outputs BLOB, output_texts BLOB
);
CREATE INDEX IF NOT EXISTS inferences_by_model ON inferences (model, seq);
CREATE INDEX IF NOT EXISTS inferences_by_request ON inferences (model, request_id);
CREATE TABLE IF NOT EXISTS reference (
    seq INTEGER PRIMARY KEY, model INTEGER NOT NULL, tag TEXT NOT NULL,
    inputs BLOB NOT NULL, input_texts BLOB, outputs BLOB, output_texts BLOB
);
CREATE INDEX IF NOT EXISTS reference_by_tag ON reference (model, tag, seq);
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY REFERENCES inferences (seq) ON DELETE CASCADE, model INTEGER NOT NULL,
    outputs BLOB NOT NULL, output_texts BLOB
);
CREATE INDEX IF NOT EXISTS labels_by_model ON labels (model, seq);
"""
_INSERT_INFERENCE = (
    "INSERT INTO inferences (model, request_id, row, time, status, namespace, revision, inputs, input_texts, "
    "outputs, output_texts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OK = 400  # rows of exchanges answered with a status below this are what the model answered


@dataclass(slots=True)
class Exchange:
    """A logged request and its response (`outputs` None when the response was an error)."""

    model: str
    request_id: str
    time: float  # seconds since the epoch
    status: int
    namespace: str
    revision: str
    inputs: Table
    outputs: Table | None


@dataclass(slots=True)
class ModelCounts:
    """What the store holds of a model (kept by the writer thread, read anywhere)."""

    rows: int = 0
    labelled: int = 0
    dropped: int = 0
    tags: Counter[str] = field(default_factory=Counter)


Blobs = tuple[list[bytes], list[bytes | None]]  # per row: the numbers, the texts (None without text columns)


def encode(side: Side, columns: Sequence[Any], rows: int) -> Blobs:
    """Per row, its numbers as float64 bytes and its texts as a JSON list."""
    texts = side.texts
    numbers = [column for column, text in zip(columns, texts, strict=True) if not text]
    matrix = np.empty((rows, len(numbers)), dtype="<f8")
    for j, column in enumerate(numbers):
        matrix[:, j] = column
    raw, width = matrix.tobytes(), 8 * len(numbers)
    blobs = [raw] if rows == 1 else [raw[i * width : (i + 1) * width] for i in range(rows)]
    if not any(texts):
        return blobs, [None] * rows
    words = [column for column, text in zip(columns, texts, strict=True) if text]
    return blobs, [orjson.dumps(list(values)) for values in zip(*words, strict=True)]


def decode(
    side: Side, numbers: Sequence[bytes | None], texts: Sequence[bytes | None], names: Sequence[str]
) -> dict[str, Any]:
    """Columns (named `names`) of stored rows; rows without this side (None) read as NaN and None."""
    flags = side.texts
    width = len(flags) - sum(flags)
    missing = np.full(width, np.nan).tobytes()
    raw = b"".join(missing if blob is None else blob for blob in numbers)
    matrix = np.frombuffer(raw, dtype="<f8").reshape(-1, width) if width else np.empty((len(numbers), 0))
    words: list[tuple[Any, ...]] = [()] * sum(flags)
    if any(flags) and numbers:
        absent = [None] * sum(flags)
        words = list(zip(*(absent if text is None else orjson.loads(text) for text in texts), strict=True))
    out: dict[str, Any] = {}
    j = k = 0
    for name, text, datatype in zip(names, flags, side.datatypes, strict=True):
        if text:
            out[name] = np.array(words[k], dtype=object)
            k += 1
        else:
            values = matrix[:, j]
            dtype = read_dtype(datatype)
            out[name] = values.astype(dtype) if dtype != values.dtype and not np.isnan(values).any() else values
            j += 1
    return out


class _Writer:
    """The one thread that writes: queued rows in batches, jobs in order after them."""

    def __init__(self, path: Path, store: MonitorStore) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.written = 0  # rows written (only this thread adds)
        self._connection = _connect(path)
        self._thread = threading.Thread(target=self._run, name="monitor-writer", daemon=True)
        self._thread.start()

    def rows(self, rows: list[tuple[Any, ...]]) -> None:
        self._queue.put(rows)

    def job(self, work: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((work, future))
        return future

    def close(self, timeout: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        settings = self._store.settings
        pending: list[tuple[Any, ...]] = []
        due = math.inf  # when the pending rows must be written
        aged_at = -math.inf  # when rows past their days were last looked for
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, min(due, aged_at + AGE_CHECK_S) - time.monotonic()))
            except queue.Empty:
                item = ()  # time to write, or to look for aged rows
            if isinstance(item, list):
                if not pending:
                    due = time.monotonic() + settings.flush_interval_s
                pending.extend(item)
                if len(pending) < settings.batch_rows and time.monotonic() < due:
                    continue
            if pending:
                self._guarded(self._write, pending)
                pending, due = [], math.inf
            if time.monotonic() >= aged_at + AGE_CHECK_S:
                aged_at = time.monotonic()
                self._guarded(lambda: self._transaction(self._store._drop_aged))
            if item is None:
                self._connection.close()
                return
            if isinstance(item, tuple) and item:
                work, future = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(self._transaction(work))
                    except BaseException as e:  # handed to whoever awaits the job
                        future.set_exception(e)

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        """Run `work`; if the database fails (disk full, ...), log it and go on: rows it was writing are lost."""
        try:
            work(*args)
        except Exception:
            log.exception("writing to the monitor's database failed")
            if args:
                self.written += len(args[0])
                self._store.counts["failed"] += len(args[0])

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with self._connection:
            self._connection.executemany(_INSERT_INFERENCE, rows)
            per_model = Counter(row[0] for row in rows)
            for key, count in per_model.items():
                self._store._wrote(self._connection, key, count)
        self.written += len(rows)
        self._store.counts["stored"] += len(rows)

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._connection:
            return work(self._connection)


def _log_failure(job: concurrent.futures.Future[Any]) -> None:
    """A job nobody awaits (keeping a model's columns) that failed: logged."""
    if (error := job.exception()) is not None:
        log.error("keeping a model's columns failed", exc_info=error)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class MonitorStore:
    """The store (see the module's docstring); `wharf.monitor.data.Rows` for the metrics and detectors.

    Built with the monitor's settings: `MonitorStore(settings)` opens (or creates) `settings.database` and starts
    the writer; `close()` writes what is queued and stops it. `clock` gives the time retention counts from."""

    def __init__(self, settings: MonitorSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.counts: Counter[str] = Counter()  # stored, dropped_rows, dropped_days, failed
        self._readers = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path = Path(settings.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        setup = _connect(path)
        with setup:
            setup.executescript(_SCHEMA)
        self.models: dict[str, ModelSchema] = {}
        self.held: dict[int, ModelCounts] = {}
        for key, name, columns, dropped in setup.execute("SELECT key, name, columns, dropped FROM models"):
            self.models[name] = ModelSchema.from_dict(key, name, orjson.loads(columns))
            self.held[key] = ModelCounts(dropped=dropped)
        for table, column in (("inferences", "rows"), ("labels", "labelled")):
            for key, count in setup.execute(f"SELECT model, COUNT(*) FROM {table} GROUP BY model"):  # noqa: S608
                setattr(self.held[key], column, count)
        for key, tag, count in setup.execute("SELECT model, tag, COUNT(*) FROM reference GROUP BY model, tag"):
            self.held[key].tags[tag] = count
        setup.close()
        self._next_key = max((schema.key for schema in self.models.values()), default=0) + 1
        self._queued = 0  # rows handed to the writer (only the event loop's thread adds)
        self._path = path
        self._writer = _Writer(path, self)

    # ---- writing (the event loop's thread) ------------------------------------------------------------------
    def add_exchange(self, exchange: Exchange) -> None:
        """Queue a logged exchange's rows (`InvalidInput` if they do not fit the model, `ServerBusy` when too many
        rows wait)."""
        rows = exchange.inputs.rows
        if self._queued - self._writer.written + rows > self.settings.max_pending_rows:
            raise ServerBusy(f"{self._queued - self._writer.written} rows wait to be written; retry later")
        schema, inputs, outputs = self._fit(exchange.model, exchange.inputs, exchange.outputs)
        input_blobs, input_texts = encode(schema.inputs, inputs, rows)
        if outputs is None or schema.outputs is None:
            output_blobs, output_texts = [None] * rows, [None] * rows
        else:
            output_blobs, output_texts = encode(schema.outputs, outputs, rows)
        head = (schema.key, exchange.request_id)
        tail = (exchange.time, exchange.status, exchange.namespace, exchange.revision)
        self._writer.rows(
            [(*head, i, *tail, input_blobs[i], input_texts[i], output_blobs[i], output_texts[i]) for i in range(rows)]
        )
        self._queued += rows

    async def add_reference(self, model: str, tag: str, inputs: Table, outputs: Table | None) -> int:
        """Store rows of reference data tagged `tag`; how many."""
        schema, input_columns, output_columns = self._fit(model, inputs, outputs)
        input_blobs, input_texts = encode(schema.inputs, input_columns, inputs.rows)
        if output_columns is None or schema.outputs is None:
            output_blobs, output_texts = [None] * inputs.rows, [None] * inputs.rows
        else:
            output_blobs, output_texts = encode(schema.outputs, output_columns, inputs.rows)
        rows = [
            (schema.key, tag, *values)
            for values in zip(input_blobs, input_texts, output_blobs, output_texts, strict=True)
        ]

        def write(connection: sqlite3.Connection) -> int:
            connection.executemany(
                "INSERT INTO reference (model, tag, inputs, input_texts, outputs, output_texts) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.held[schema.key].tags[tag] += len(rows)
            return len(rows)

        return await self._job(write)

    async def add_labels(self, model: str, labels: Sequence[tuple[str, int | None, Table]]) -> int:
        """Store ground truth: per (request id, first row or None for all its rows, the outputs' true values) of
        logged rows of `model`. Unknown requests, row counts that differ and outputs that do not fit are refused
        (and nothing is stored); a row labelled again takes its new labels. How many rows were labelled."""
        schema = self.schema(model)
        if schema.outputs is None:
            raise InvalidInput(f"model '{model}' has no outputs yet; its labels have nothing to match")
        encoded = []
        for request_id, first, table in labels:
            _, columns = schema.outputs.fit(table, model)  # numbers of another kind are kept as the outputs' kind
            encoded.append((request_id, first, table.rows, encode(schema.outputs, columns, table.rows)))

        def write(connection: sqlite3.Connection) -> int:
            written = []
            for request_id, first, count, (blobs, texts) in encoded:
                seqs = [
                    seq
                    for (seq,) in connection.execute(
                        "SELECT seq FROM inferences WHERE model = ? AND request_id = ? ORDER BY row, seq",
                        (schema.key, request_id),
                    )
                ]
                if not seqs:
                    raise NotFound(f"model '{model}' has no logged request '{request_id}' (or it was dropped)")
                start = first or 0
                if (first is None and count != len(seqs)) or start + count > len(seqs):
                    raise InvalidInput(
                        f"request '{request_id}' has {len(seqs)} rows; labels for {count} rows"
                        + (f" from row {start}" if first is not None else "")
                        + " do not fit them"
                    )
                written.extend(zip(seqs[start : start + count], blobs, texts, strict=True))
            connection.executemany(
                "INSERT OR REPLACE INTO labels (seq, model, outputs, output_texts) VALUES (?, ?, ?, ?)",
                [(seq, schema.key, blob, text) for seq, blob, text in written],
            )
            self.held[schema.key].labelled = connection.execute(
                "SELECT COUNT(*) FROM labels WHERE model = ?", (schema.key,)
            ).fetchone()[0]
            return len(written)

        return await self._job(write)

    async def rename(self, model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> ModelSchema:
        """Show `model`'s columns by new names (each mapping, original name -> new name, replaces the last)."""
        schema = self.schema(model).renamed(inputs, outputs)
        self._set(schema)
        await self.flush()
        return schema

    async def forget_names(self, model: str) -> ModelSchema:
        """Show `model`'s columns by their own names again."""
        return await self.rename(model, {}, {})

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        await self._job(lambda _: None)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the writer; close the readers' connections."""
        self._writer.close(timeout)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _fit(self, model: str, inputs: Table, outputs: Table | None) -> tuple[ModelSchema, tuple[Any, ...], Any]:
        """The model's columns after this payload, and the payload's columns in their order."""
        if outputs is not None and outputs.rows != inputs.rows:
            raise InvalidInput(f"the outputs have {outputs.rows} rows but the inputs have {inputs.rows}")
        schema = self.models.get(model)
        if schema is None:
            if not model:
                raise InvalidInput("the model's name is empty")
            schema = ModelSchema.first(self._next_key, model, inputs, outputs)
            self._next_key += 1
            self._set(schema)
            return schema, inputs.columns, outputs.columns if outputs else None
        fitted, input_columns, output_columns = schema.fit(inputs, outputs)
        if fitted is not schema:
            self._set(fitted)
        return fitted, input_columns, output_columns

    def _set(self, schema: ModelSchema) -> None:
        """Take `schema` as the model's columns now, and have the writer keep them before what follows."""
        self.models[schema.name] = schema
        self.held.setdefault(schema.key, ModelCounts())
        columns = orjson.dumps(schema.as_dict())
        written = self._writer.job(
            lambda connection: connection.execute(
                "INSERT INTO models (key, name, columns) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET columns = excluded.columns",
                (schema.key, schema.name, columns),
            )
        )
        written.add_done_callback(_log_failure)

    async def _job(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        return await asyncio.wrap_future(self._writer.job(work))

    # ---- retention (the writer's thread) --------------------------------------------------------------------
    def _wrote(self, connection: sqlite3.Connection, key: int, count: int) -> None:
        held = self.held[key]
        held.rows += count
        excess = held.rows - self.settings.retention_rows
        if excess > 0:
            cut = connection.execute(
                "SELECT seq FROM inferences WHERE model = ? ORDER BY seq LIMIT 1 OFFSET ?", (key, excess - 1)
            ).fetchone()[0]
            self._dropped(connection, key, "rows", "model = ? AND seq <= ?", (key, cut))

    def _drop_aged(self, connection: sqlite3.Connection) -> None:
        cutoff = self.clock() - self.settings.retention_days * 86400.0
        for key in list(self.held):
            oldest = connection.execute(
                "SELECT time FROM inferences WHERE model = ? ORDER BY seq LIMIT 1", (key,)
            ).fetchone()
            if oldest is not None and oldest[0] < cutoff:
                self._dropped(connection, key, "days", "model = ? AND time < ?", (key, cutoff))

    def _dropped(
        self, connection: sqlite3.Connection, key: int, reason: str, where: str, args: tuple[Any, ...]
    ) -> None:
        dropped = connection.execute(f"DELETE FROM inferences WHERE {where}", args).rowcount  # noqa: S608
        held = self.held[key]
        held.rows -= dropped
        held.dropped += dropped
        held.labelled = connection.execute("SELECT COUNT(*) FROM labels WHERE model = ?", (key,)).fetchone()[0]
        connection.execute("UPDATE models SET dropped = dropped + ? WHERE key = ?", (dropped, key))
        self.counts[f"dropped_{reason}"] += dropped

    # ---- reading (any thread): wharf.monitor.data.Rows ------------------------------------------------------
    def schema(self, model: str) -> ModelSchema:
        """`model`'s columns (`NotFound` naming the models there are)."""
        schema = self.models.get(model)
        if schema is None:
            known = sorted(self.models)
            raise NotFound(f"no model '{model}' has rows here" + (f"; the models are {known}" if known else ""))
        return schema

    def input_names(self, model: str) -> list[str]:
        return list(self.schema(model).inputs.shown)

    def output_names(self, model: str) -> list[str]:
        outputs = self.schema(model).outputs
        return list(outputs.shown) if outputs else []

    def reference(self, model: str, tag: str) -> pd.DataFrame:
        schema = self.schema(model)
        rows = self._read(
            "SELECT inputs, input_texts, outputs, output_texts FROM reference WHERE model = ? AND tag = ? ORDER BY seq",
            (schema.key, tag),
        )
        if not rows:
            tags = sorted(self.held[schema.key].tags)
            raise NotFound(f"model '{model}' has no reference rows tagged '{tag}'; its tags are {tags}")
        return self._frame(schema, rows)

    def inferences(self, model: str, last: int | None = None) -> pd.DataFrame:
        schema = self.schema(model)
        rows = self._read(
            "SELECT inputs, input_texts, outputs, output_texts FROM inferences WHERE model = ? AND status < ? "
            "ORDER BY seq DESC LIMIT ?",
            (schema.key, _OK, -1 if last is None else last),
        )
        rows.reverse()
        return self._frame(schema, rows)

    def labelled(self, model: str, last: int | None = None) -> pd.DataFrame:
        schema = self.schema(model)
        rows = self._read(
            "SELECT i.inputs, i.input_texts, i.outputs, i.output_texts, l.outputs, l.output_texts "
            "FROM labels AS l JOIN inferences AS i ON i.seq = l.seq WHERE l.model = ? AND i.status < ? "
            "ORDER BY l.seq DESC LIMIT ?",
            (schema.key, _OK, -1 if last is None else last),
        )
        rows.reverse()
        columns = self._columns(schema, rows)
        if schema.outputs is not None:
            truth = [ground_truth(name) for name in schema.outputs.shown]
            columns |= decode(schema.outputs, [row[4] for row in rows], [row[5] for row in rows], truth)
        return pd.DataFrame(columns)

    def request_ids(self, model: str) -> list[tuple[str, float]]:
        """The request id and time of every logged row of `model`, oldest first (a request's rows in order)."""
        schema = self.schema(model)
        return self._read("SELECT request_id, time FROM inferences WHERE model = ? ORDER BY seq", (schema.key,))

    def rows_of(self, model: str, request_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
        """The logged rows of each request (input and output columns, in row order); requests not held are left
        out."""
        schema = self.schema(model)
        out = {}
        for request_id in dict.fromkeys(request_ids):
            rows = self._read(
                "SELECT inputs, input_texts, outputs, output_texts FROM inferences WHERE model = ? AND request_id = ? "
                "ORDER BY row, seq",
                (schema.key, request_id),
            )
            if rows:
                out[request_id] = self._frame(schema, rows)
        return out

    def _frame(self, schema: ModelSchema, rows: list[tuple[Any, ...]]) -> pd.DataFrame:
        return pd.DataFrame(self._columns(schema, rows))

    @staticmethod
    def _columns(schema: ModelSchema, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The input and output columns of stored rows (inputs, input texts, outputs, output texts, ...)."""
        columns = decode(schema.inputs, [r[0] for r in rows], [r[1] for r in rows], schema.inputs.shown)
        if schema.outputs is not None:
            columns |= decode(schema.outputs, [r[2] for r in rows], [r[3] for r in rows], schema.outputs.shown)
        return columns

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = _connect(self._path)
            with self._lock:
                self._connections.append(connection)
        return connection.execute(sql, args).fetchall()
