"""Resource versions, uids and field managers in the store: one counter for every write, kept across restarts,
no version for a write of nothing, and a database of an older Wharf given them when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wharf.control.store import Store

KIND = "InferenceService"


def test_every_write_takes_the_next_version_and_a_restart_goes_on_counting(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    a, _ = store.put(KIND, "default", "a", {"spec": 1})
    b, _ = store.put(KIND, "default", "b", {"spec": 1})
    assert (a.version, b.version, store.version) == (1, 2, 2) and a.uid and a.uid != b.uid
    same, changed = store.put(KIND, "default", "a", {"spec": 1})
    assert not changed and same.version == 1  # nothing written, no version
    store.set_status(KIND, "default", "a", {"ready": True})
    store.set_status(KIND, "default", "a", {"ready": True})
    assert store.get(KIND, "default", "a").version == 3 == store.version  # type: ignore[union-attr]
    managed, changed = store.put(KIND, "default", "a", {"spec": 1}, [{"manager": "m"}])
    assert not changed and managed.version == 4 and managed.managed == ({"manager": "m"},) and managed.generation == 1
    store.close()

    reopened = Store(tmp_path / "wharf.db")
    assert reopened.version == 4
    assert reopened.delete(KIND, "default", "a") and reopened.version == 5
    again, _ = reopened.put(KIND, "default", "a", {"spec": 1})
    assert again.version == 6 and again.uid != a.uid and again.managed == ()


def test_a_database_of_an_older_wharf_gets_uids_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "wharf.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE resources (
            kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            manifest TEXT NOT NULL, generation INTEGER NOT NULL, status TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (kind, namespace, name));
        INSERT INTO resources VALUES ('InferenceService', 'default', 'a', '{"spec":1}', 3, '{}', 1.0, 2.0);
        INSERT INTO resources VALUES ('InferenceService', 'default', 'b', '{"spec":2}', 1, '{}', 0.5, 2.0);"""
    )
    old.close()
    store = Store(path)
    a, b = store.get(KIND, "default", "a"), store.get(KIND, "default", "b")
    assert a is not None and b is not None
    assert (b.version, a.version, store.version) == (1, 2, 2)  # in order of creation
    assert a.uid and b.uid and a.generation == 3 and a.manifest == {"spec": 1}
    store.close()
    assert Store(path).get(KIND, "default", "a") == a  # opened again: nothing changes
