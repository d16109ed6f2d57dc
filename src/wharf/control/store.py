"""The control plane's state in SQLite: applied resources with their status, revisions, replica records, and the
recent events of each resource.

One file under WHARF_HOME. Every write is one transaction; the daemon is the only writer (a lock file keeps a
second daemon out), so a restart finds exactly what was last written. Whoever must follow the resources (watches,
the event recorder) subscribes to their changes: each listener is called, on the writer's thread, for every
write that created, changed or deleted a resource, with the resource before and after it (within the write's
transaction, so that what a listener writes commits with it: an apply of thousands of resources commits once).

Each resource has what Kubernetes' API server keeps of an object: a `uid` (made when it is created; a resource
deleted and created again has a new one), the `version` of its last write (its `resourceVersion`), its field
managers (`managed`, as `metadata.managedFields` shows them) and its `generation` (counted up when its manifest
changes). Versions come from one counter for every resource, kept in the same file and counted up in the
transaction of each create, change (of manifest, managers or status) and delete, so that they only ever grow, across
restarts too; `version` is the last one given. A write that would change nothing is not made and takes no version.
A database of an older Wharf gains the columns when opened: its resources get a uid and a version then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, generation INTEGER NOT NULL, status TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, updated REAL NOT NULL,
    uid TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL DEFAULT 0, managed TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('version', 0);
CREATE TABLE IF NOT EXISTS revisions (
    namespace TEXT NOT NULL, service TEXT NOT NULL, component TEXT NOT NULL, number INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL, spec TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (namespace, service, component, number)
);
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY, revision TEXT NOT NULL, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL,
    count INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_resource ON events (kind, namespace, name, id);
"""
#: The columns of `resources` that a database made by an older Wharf lacks, with their definitions.
_ADDED_COLUMNS = {
    "uid": "TEXT NOT NULL DEFAULT ''",
    "version": "INTEGER NOT NULL DEFAULT 0",
    "managed": "TEXT NOT NULL DEFAULT '[]'",
}
_RESOURCE_COLUMNS = "kind, namespace, name, manifest, generation, status, created, updated, uid, version, managed"
#: The kind whose resources have revisions (the rows of `revisions` name its resources as their service).
REVISIONED_KIND = "InferenceService"
EVENTS_KEPT = 100  # per resource: the oldest go first
MAX_EVENT_MESSAGE = 4000  # characters of a message kept (a replica's last error carries lines of its log)

log = logging.getLogger(__name__)


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
    uid: str = ""
    version: int = 0  # of its last write (its resourceVersion)
    managed: tuple[dict[str, Any], ...] = ()  # its field managers, as metadata.managedFields shows them


@dataclass(frozen=True, slots=True)
class Change:
    """A write to a resource: `before` is None when it created the resource, `after` None when it deleted it;
    `version` is the write's."""

    kind: str
    namespace: str
    name: str
    before: Resource | None
    after: Resource | None
    version: int = 0


Listener = Callable[[Change], None]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Something that happened to a resource, as Kubernetes' events say it: `type` Normal or Warning, a CamelCase
    `reason`, a sentence; the same event again counts up (`count`, `last`) instead of being kept twice."""

    kind: str
    namespace: str
    name: str
    type: str
    reason: str
    message: str
    count: int
    first: float
    last: float


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
        self._migrate()
        self._listeners: list[Listener] = []

    def _migrate(self) -> None:
        """Give a database of an older Wharf the columns it lacks, and its resources a uid and a version."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(resources)")}
        with self._transaction():
            for column, definition in _ADDED_COLUMNS.items():
                if column not in columns:
                    self._db.execute(f"ALTER TABLE resources ADD COLUMN {column} {definition}")
            unstamped = self._db.execute(
                "SELECT kind, namespace, name FROM resources WHERE uid = '' OR version = 0 ORDER BY created"
            ).fetchall()
            for key in unstamped:
                self._db.execute(
                    "UPDATE resources SET uid = CASE uid WHEN '' THEN ? ELSE uid END, version = ?"
                    " WHERE kind = ? AND namespace = ? AND name = ?",
                    (str(uuid.uuid4()), self._next_version(), *key),
                )

    @property
    def version(self) -> int:
        """The last version given to a write (a list's resourceVersion)."""
        return self._db.execute("SELECT value FROM counters WHERE name = 'version'").fetchone()[0]

    def _next_version(self) -> int:
        """The next version, counted in the caller's transaction."""
        return self._db.execute(
            "UPDATE counters SET value = value + 1 WHERE name = 'version' RETURNING value"
        ).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` after each write that creates, changes or deletes a resource; returns the unsubscribe.
        A listener that raises is logged and the write stands."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(
        self, kind: str, namespace: str, name: str, before: Resource | None, version: int, after: Resource | None = None
    ) -> None:
        """Tell the listeners of a write (`after`: the resource as written, read again when not given)."""
        if not self._listeners:
            return
        change = Change(kind, namespace, name, before, after or self.get(kind, namespace, name), version)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("a store listener failed", extra={"resource": f"{kind} {namespace}/{name}"})

    # -- resources --------------------------------------------------------------------------------------------
    def put(
        self,
        kind: str,
        namespace: str,
        name: str,
        manifest: dict[str, Any],
        managed: list[dict[str, Any]] | None = None,
    ) -> tuple[Resource, bool]:
        """Create or update a resource, with its field managers (None: those it has); returns it and whether its
        manifest changed (a new generation)."""
        return self.put_many([(kind, namespace, name, manifest, managed)])[0]

    def put_many(
        self, items: Sequence[tuple[str, str, str, dict[str, Any], list[dict[str, Any]] | None]]
    ) -> list[tuple[Resource, bool]]:
        """`put` of each (kind, namespace, name, manifest, managed), all in one transaction (an apply of thousands
        of documents commits once); the listeners hear of each change within it, so that what they write (events)
        commits with it."""
        now = time.time()
        written: list[tuple[tuple[str, str, str], Resource | None, bool, int]] = []
        with self._transaction():
            for kind, namespace, name, manifest, managed in items:
                old = self.get(kind, namespace, name)
                changed = old is None or old.manifest != manifest
                if not changed and (managed is None or tuple(managed) == old.managed):
                    written.append(((kind, namespace, name), old, False, 0))
                    continue
                version = self._next_version()
                if old is None:
                    self._db.execute(
                        f"INSERT INTO resources ({_RESOURCE_COLUMNS}) VALUES (?, ?, ?, ?, 1, '{{}}', ?, ?, ?, ?, ?)",
                        (
                            kind,
                            namespace,
                            name,
                            _dumps(manifest),
                            now,
                            now,
                            str(uuid.uuid4()),
                            version,
                            _dumps(managed or []),
                        ),
                    )
                else:
                    self._db.execute(
                        "UPDATE resources SET manifest = ?, generation = generation + ?, updated = ?, version = ?,"
                        " managed = ? WHERE kind = ? AND namespace = ? AND name = ?",
                        (
                            _dumps(manifest),
                            int(changed),
                            now,
                            version,
                            _dumps(list(old.managed) if managed is None else managed),
                            kind,
                            namespace,
                            name,
                        ),
                    )
                written.append(((kind, namespace, name), old, changed, version))
            results = []
            for key, old, changed, version in written:  # heard within the transaction: listeners' writes join it
                if not version:  # nothing written
                    assert old is not None
                    results.append((old, False))
                    continue
                resource = self.get(*key)
                assert resource is not None
                self._changed(*key, old, version)
                results.append((resource, changed))
        return results

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        row = self._db.execute(
            f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        ).fetchone()
        return _resource(row) if row else None

    def list(self, kind: str, namespace: str | None = None) -> list[Resource]:
        query, args = f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE kind = ?", [kind]
        if namespace is not None:
            query, args = query + " AND namespace = ?", [kind, namespace]
        return [_resource(row) for row in self._db.execute(query + " ORDER BY namespace, name", args)]

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a resource with its events (and, for an InferenceService, its revisions); whether it was there."""
        before = self.get(kind, namespace, name)
        with self._transaction():
            version = self._next_version() if before is not None else 0
            self._db.execute(
                "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
            )
            if kind == REVISIONED_KIND:  # another kind's resource may share a service's name
                self._db.execute("DELETE FROM revisions WHERE namespace = ? AND service = ?", (namespace, name))
            self._db.execute(
                "DELETE FROM events WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
            )
        if before is None:
            return False
        self._changed(kind, namespace, name, before, version)
        return True

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace a resource's status (nothing when it is gone, or when the status is the same as JSON: a tuple the
        same as the list stored)."""
        self.set_statuses(kind, [(namespace, name, status)])

    def set_statuses(self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """`set_status` of each (namespace, name, status) of `kind`, all in one transaction, with what the
        listeners write when they hear of each change."""
        written: list[tuple[str, str, Resource, int, dict[str, Any]]] = []
        with self._transaction():
            for namespace, name, status in items:
                before = self.get(kind, namespace, name)
                text = _dumps(status)
                if before is None or _dumps(before.status) == text:
                    continue
                version = self._next_version()
                self._db.execute(
                    "UPDATE resources SET status = ?, version = ? WHERE kind = ? AND namespace = ? AND name = ?",
                    (text, version, kind, namespace, name),
                )
                written.append((namespace, name, before, version, status))
            for namespace, name, before, version, status in written:  # heard within it, as in `put_many`
                after = dataclasses.replace(before, status=status, version=version)
                self._changed(kind, namespace, name, before, version, after)

    # -- events -----------------------------------------------------------------------------------------------
    def add_event(self, kind: str, namespace: str, name: str, type: str, reason: str, message: str) -> None:
        """Record an event of a resource: the same as its last one counts that one up; beyond `EVENTS_KEPT` of
        the resource, the oldest goes."""
        now, message = time.time(), message[:MAX_EVENT_MESSAGE]
        key = (kind, namespace, name)
        with self._transaction():
            last = self._db.execute(
                "SELECT id, type, reason, message FROM events WHERE kind = ? AND namespace = ? AND name = ?"
                " ORDER BY id DESC LIMIT 1",
                key,
            ).fetchone()
            if last is not None and tuple(last[1:]) == (type, reason, message):
                self._db.execute("UPDATE events SET count = count + 1, last = ? WHERE id = ?", (now, last[0]))
                return
            self._db.execute(
                "INSERT INTO events (kind, namespace, name, type, reason, message, count, first, last)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (*key, type, reason, message, now, now),
            )
            self._db.execute(
                "DELETE FROM events WHERE kind = ? AND namespace = ? AND name = ? AND id <= (SELECT id FROM events"
                " WHERE kind = ? AND namespace = ? AND name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (*key, *key, EVENTS_KEPT),
            )

    def events(self, kind: str, namespace: str, name: str) -> list[EventRecord]:
        """The resource's recent events, oldest first."""
        rows = self._db.execute(
            "SELECT kind, namespace, name, type, reason, message, count, first, last FROM events"
            " WHERE kind = ? AND namespace = ? AND name = ? ORDER BY id",
            (kind, namespace, name),
        )
        return [EventRecord(*row) for row in rows]

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

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._db)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction on `db` (opened with isolation_level=None); a write within another (a listener's event within
    a batch) joins it: one commit."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _resource(row: tuple) -> Resource:  # type: ignore[type-arg]
    kind, namespace, name, manifest, generation, status, created, updated, uid, version, managed = row
    return Resource(
        kind,
        namespace,
        name,
        json.loads(manifest),
        generation,
        json.loads(status),
        created,
        updated,
        uid,
        version,
        tuple(json.loads(managed)),
    )
