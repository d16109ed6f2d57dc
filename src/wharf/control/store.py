"""The control plane's state in SQLite: applied resources with their status, revisions, and replica records.

One file under WHARF_HOME. Every write is one transaction; the daemon is the only writer (a lock file keeps a
second daemon out), so a restart finds exactly what was last written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, generation INTEGER NOT NULL, status TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS revisions (
    namespace TEXT NOT NULL, service TEXT NOT NULL, component TEXT NOT NULL, number INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL, spec TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (namespace, service, component, number)
);
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY, revision TEXT NOT NULL, record TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    namespace: str
    name: str
    manifest: dict[str, Any]
    generation: int
    status: dict[str, Any]
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    namespace: str
    service: str
    component: str
    number: int
    name: str
    fingerprint: str
    spec: dict[str, Any]
    created: float


def revision_prefix(namespace: str, service: str, component: str) -> str:
    """What the names of a component's revisions start with: KServe's `{service}-{component}`; outside the default
    namespace the namespace joins in, because one machine has one space of revision names (the gateway and the
    backend key on them). Two services with one prefix cannot both run: the controller refuses the second."""
    scope = service if namespace == "default" else f"{service}-{namespace}"
    return f"{scope}-{component}"


def revision_name(namespace: str, service: str, component: str, number: int) -> str:
    """KServe's `{service}-{component}-{number}`, after `revision_prefix`."""
    return f"{revision_prefix(namespace, service, component)}-{number:05d}"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit; `with self._db` opens transactions
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- resources --------------------------------------------------------------------------------------------
    def put(self, kind: str, namespace: str, name: str, manifest: dict[str, Any]) -> tuple[Resource, bool]:
        """Create or update a resource; returns it and whether its manifest changed (a new generation)."""
        now = time.time()
        old = self.get(kind, namespace, name)
        if old is not None and old.manifest == manifest:
            return old, False
        with self._transaction():
            if old is None:
                self._db.execute(
                    "INSERT INTO resources VALUES (?, ?, ?, ?, 1, '{}', ?, ?)",
                    (kind, namespace, name, _dumps(manifest), now, now),
                )
            else:
                self._db.execute(
                    "UPDATE resources SET manifest = ?, generation = generation + 1, updated = ?"
                    " WHERE kind = ? AND namespace = ? AND name = ?",
                    (_dumps(manifest), now, kind, namespace, name),
                )
        resource = self.get(kind, namespace, name)
        assert resource is not None
        return resource, True

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        row = self._db.execute(
            "SELECT * FROM resources WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
        ).fetchone()
        return _resource(row) if row else None

    def list(self, kind: str, namespace: str | None = None) -> list[Resource]:
        query, args = "SELECT * FROM resources WHERE kind = ?", [kind]
        if namespace is not None:
            query, args = query + " AND namespace = ?", [kind, namespace]
        return [_resource(row) for row in self._db.execute(query + " ORDER BY namespace, name", args)]

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        with self._transaction():
            gone = self._db.execute(
                "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
            ).rowcount
            self._db.execute("DELETE FROM revisions WHERE namespace = ? AND service = ?", (namespace, name))
        return gone > 0

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE resources SET status = ? WHERE kind = ? AND namespace = ? AND name = ?",
            (_dumps(status), kind, namespace, name),
        )

    # -- revisions --------------------------------------------------------------------------------------------
    def revision_for(
        self, namespace: str, service: str, component: str, fingerprint: str, spec: dict[str, Any]
    ) -> tuple[RevisionRecord, bool]:
        """The newest revision if its fingerprint matches, else a new one; returns it and whether it is new."""
        revisions = self.revisions(namespace, service, component)
        if revisions and revisions[-1].fingerprint == fingerprint:
            return revisions[-1], False
        number = revisions[-1].number + 1 if revisions else 1
        record = RevisionRecord(
            namespace,
            service,
            component,
            number,
            revision_name(namespace, service, component, number),
            fingerprint,
            spec,
            time.time(),
        )
        self._db.execute(
            "INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (namespace, service, component, number, record.name, fingerprint, _dumps(spec), record.created),
        )
        return record, True

    def revisions(self, namespace: str, service: str, component: str) -> list[RevisionRecord]:
        rows = self._db.execute(
            "SELECT * FROM revisions WHERE namespace = ? AND service = ? AND component = ? ORDER BY number",
            (namespace, service, component),
        )
        return [RevisionRecord(*row[:6], json.loads(row[6]), row[7]) for row in rows]

    # -- replicas (for adoption after a restart) ----------------------------------------------------------------
    def save_replicas(self, records: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Replace the replica records: id -> (revision, record)."""
        with self._transaction():
            self._db.execute("DELETE FROM replicas")
            self._db.executemany(
                "INSERT INTO replicas VALUES (?, ?, ?)",
                [(rid, revision, _dumps(record)) for rid, (revision, record) in records.items()],
            )

    def replicas(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {rid: (rev, json.loads(rec)) for rid, rev, rec in self._db.execute("SELECT * FROM replicas")}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _resource(row: tuple) -> Resource:  # type: ignore[type-arg]
    kind, namespace, name, manifest, generation, status, created, updated = row
    return Resource(kind, namespace, name, json.loads(manifest), generation, json.loads(status), created, updated)
