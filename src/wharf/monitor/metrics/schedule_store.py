"""Scheduled metric requests kept in SQLite, so that they survive a restart: the table `scheduled_metrics` of the
monitor's database file (beside the store's tables), through a connection of its own opened per operation. The
operations are rare (registering, deleting, starting), never on the path of logged events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from wharf.monitor.side_table import SideTable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scheduled_metrics (
    id TEXT PRIMARY KEY,        -- the request id (a UUID)
    metric TEXT NOT NULL,       -- the metric's name, e.g. SPD
    body TEXT NOT NULL,         -- the request as JSON, TrustyAI's field names
    registered REAL NOT NULL    -- when it was registered, Unix seconds
)
"""


@dataclass(frozen=True, slots=True)
class StoredRequest:
    id: UUID
    metric: str
    body: dict[str, Any]
    registered: float


class ScheduleStore:
    def __init__(self, database: str | Path, busy_timeout_s: float = 5.0) -> None:
        self._table = SideTable(database, _SCHEMA, busy_timeout_s)

    def add(self, request: StoredRequest) -> None:
        with self._table.transaction() as connection:
            connection.execute(
                "INSERT INTO scheduled_metrics (id, metric, body, registered) VALUES (?, ?, ?, ?)",
                (str(request.id), request.metric, orjson.dumps(request.body).decode(), request.registered),
            )

    def remove(self, request_id: UUID) -> None:
        with self._table.transaction() as connection:
            connection.execute("DELETE FROM scheduled_metrics WHERE id = ?", (str(request_id),))

    def load(self) -> list[StoredRequest]:
        """Every stored request, in the order they were added."""
        with self._table.transaction() as connection:
            found = connection.execute(
                "SELECT id, metric, body, registered FROM scheduled_metrics ORDER BY rowid"
            ).fetchall()
        return [
            StoredRequest(UUID(id_), metric, orjson.loads(body), registered) for id_, metric, body, registered in found
        ]
