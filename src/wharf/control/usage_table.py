"""The revisions' usage per minute, kept in the control store's SQLite file (a table of its own, `usage_minutes`),
so that `wharf cost --since 1h` covers the time before a daemon restart.

One row per revision per wall-clock minute: the scaling settings then (JSON) and a column per `Usage` field. The
recorder adds what each sample saw to its minute's row (sums add up, `..._max` columns keep the larger), so a
minute split by a restart is whole again. Rows older than the retention are deleted as new ones come. The table has
a connection of its own to the store's file (which runs in WAL mode); both are written from the daemon's loop,
one statement at a time.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from wharf.telemetry.cost import Bucket, RevisionKey, Scale, Usage

MINUTE_S = 60.0
_FIELDS = [f.name for f in dataclasses.fields(Usage)]
_INTEGERS = frozenset(f.name for f in dataclasses.fields(Usage) if f.type in ("int", int))
_KEY = ("namespace", "service", "component", "revision")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS usage_minutes (
    minute REAL NOT NULL, {", ".join(f"{k} TEXT NOT NULL" for k in _KEY)}, scale TEXT NOT NULL,
    {", ".join(f"{name} REAL NOT NULL" for name in _FIELDS)},
    PRIMARY KEY (revision, minute)
);
CREATE INDEX IF NOT EXISTS usage_minutes_by_minute ON usage_minutes (minute);
"""
_COLUMNS = ("minute", *_KEY, "scale", *_FIELDS)
_ADD = (
    f"INSERT INTO usage_minutes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (revision, minute) DO UPDATE SET namespace = excluded.namespace, service = excluded.service,"
    " component = excluded.component, scale = excluded.scale, "
    + ", ".join(
        f"{name} = max({name}, excluded.{name})" if name.endswith("_max") else f"{name} = {name} + excluded.{name}"
        for name in _FIELDS
    )
)


def minute_of(wall_s: float) -> float:
    """The start of the wall-clock minute `wall_s` falls in."""
    return wall_s // MINUTE_S * MINUTE_S


class UsageTable:
    def __init__(self, database: Path) -> None:
        # used from the daemon's loop only, whichever thread runs it
        self._db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, minute: float, buckets: Sequence[tuple[RevisionKey, Scale, Usage]]) -> None:
        """Add each revision's `Usage` to its row of `minute`, in one transaction."""
        rows = [
            (
                minute,
                *dataclasses.astuple(key),
                json.dumps(dataclasses.asdict(scale)),
                *(getattr(usage, name) for name in _FIELDS),
            )
            for key, scale, usage in buckets
        ]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_ADD, rows)

    def since(self, wall_s: float) -> list[Bucket]:
        """The rows of every minute that ends after `wall_s`, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM usage_minutes WHERE minute > ? ORDER BY minute, revision",
            (wall_s - MINUTE_S,),
        )
        return [_bucket(row) for row in rows]

    def prune(self, before_wall_s: float) -> None:
        """Delete the rows of minutes that ended before `before_wall_s`."""
        self._db.execute("DELETE FROM usage_minutes WHERE minute <= ?", (before_wall_s - MINUTE_S,))


def _bucket(row: tuple) -> Bucket:  # type: ignore[type-arg]
    minute, *key, scale = row[: 2 + len(_KEY)]
    values = dict(zip(_FIELDS, row[2 + len(_KEY) :], strict=True))
    usage = Usage(**{name: int(v) if name in _INTEGERS else v for name, v in values.items()})
    return Bucket(minute, RevisionKey(*key), Scale(**json.loads(scale)), usage)
