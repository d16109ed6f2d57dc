"""A table of its own in the monitor's SQLite file, beside the store's tables, for what is configured rarely and must
survive a restart (detector configurations, scheduled metric requests). Each transaction opens a connection of its
own and closes it: the operations are rare, never on the path of logged events."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path


class SideTable:
    """The table that `schema` (CREATE TABLE IF NOT EXISTS ...) creates in the SQLite file `database`."""

    def __init__(self, database: str | Path, schema: str, busy_timeout_s: float) -> None:
        self._database = str(database)
        self._busy_timeout_s = busy_timeout_s
        with self.transaction() as connection:
            connection.execute(schema)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection whose work is committed on leaving (rolled back on an exception), then closed."""
        with closing(sqlite3.connect(self._database, timeout=self._busy_timeout_s)) as connection, connection:
            yield connection
