"""The bandits' statistics, kept in the control store's SQLite file: the one place where pulls and rewards per
bandit and arm are added up, across gateways and across `wharf up` restarts.

Two tables of their own: `bandit_arms` (per bandit and arm, the `ArmStats` counts of every gateway together) and
`bandit_gateways` (per gateway, bandit and arm, the counts of that gateway that `bandit_arms` includes). A gateway
reports the totals of its own counts since it began (`wharf.gateway.bandits.BanditReport`); `apply` adds the
difference from what it last applied of that gateway, in one transaction (`BEGIN IMMEDIATE`: a writer at a time,
whichever connection or process), so a report repeated or lost, or several gateways at once, count every pull and
reward exactly once. Rows of gateways not heard of for `GATEWAY_KEPT_S` are dropped when the table is opened, and
a graph's rows when it is deleted (`forget_deleted`, a store listener).

A bandit's key says what it routes (`wharf.gateway.bandits.graph_bandit`, `service_bandit`); its policy's
parameters are in the manifest, and what the policy believes of an arm (a posterior) follows from these counts.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

from wharf.bandit.arms import ArmStats
from wharf.control.graph_plan import GRAPH_KIND
from wharf.control.store import Change, transaction
from wharf.gateway.bandits import ArmTable, BanditReport, graph_bandits

GATEWAY_KEPT_S = 7 * 24 * 3600.0
_COUNTS = tuple(f.name for f in dataclasses.fields(ArmStats) if f.name != "name")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bandit_arms (
    bandit TEXT NOT NULL, arm TEXT NOT NULL, {", ".join(f"{c} REAL NOT NULL DEFAULT 0" for c in _COUNTS)},
    PRIMARY KEY (bandit, arm)
);
CREATE TABLE IF NOT EXISTS bandit_gateways (
    gateway TEXT NOT NULL, bandit TEXT NOT NULL, arm TEXT NOT NULL, seen REAL NOT NULL,
    {", ".join(f"{c} REAL NOT NULL DEFAULT 0" for c in _COUNTS)},
    PRIMARY KEY (gateway, bandit, arm)
);
"""
_ADD = (
    f"INSERT INTO bandit_arms (bandit, arm, {', '.join(_COUNTS)}) VALUES (?, ?, {', '.join('?' * len(_COUNTS))})"
    " ON CONFLICT (bandit, arm) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS)
)
_APPLIED = (
    f"INSERT OR REPLACE INTO bandit_gateways (gateway, bandit, arm, seen, {', '.join(_COUNTS)})"
    f" VALUES (?, ?, ?, ?, {', '.join('?' * len(_COUNTS))})"
)


class BanditState:
    def __init__(self, database: Path) -> None:
        # used from the daemon's loop only, whichever thread runs it
        self._db = sqlite3.connect(database, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")  # as the store's (a file of its own in tests)
        self._db.executescript(_SCHEMA)
        with transaction(self._db):
            self._db.execute("DELETE FROM bandit_gateways WHERE seen < ?", (time.time() - GATEWAY_KEPT_S,))

    def close(self) -> None:
        self._db.close()

    def apply(self, report: BanditReport) -> ArmTable:
        """Add what `report`'s gateway counted since its previous report; returns what of its counts the totals
        now include (its report's totals)."""
        now = time.time()
        with transaction(self._db):
            for bandit, arms in report.totals.items():
                for arm, total in arms.items():
                    row = self._db.execute(
                        f"SELECT {', '.join(_COUNTS)} FROM bandit_gateways WHERE gateway = ? AND bandit = ? AND arm = ?",
                        (report.gateway, bandit, arm),
                    ).fetchone()
                    counts = [getattr(total, c) for c in _COUNTS]
                    delta = [new - old for new, old in zip(counts, row, strict=True)] if row else counts
                    if any(delta):
                        self._db.execute(_ADD, (bandit, arm, *delta))
                    self._db.execute(_APPLIED, (report.gateway, bandit, arm, now, *counts))
        return report.totals

    def totals(self, bandit_prefix: str = "") -> ArmTable:
        """Every gateway's counts per bandit and arm (of the bandits whose key starts with `bandit_prefix`)."""
        rows = self._db.execute(
            f"SELECT bandit, arm, {', '.join(_COUNTS)} FROM bandit_arms WHERE substr(bandit, 1, ?) = ?"
            " ORDER BY bandit, rowid",
            (len(bandit_prefix), bandit_prefix),
        )
        table: ArmTable = {}
        for bandit, arm, *counts in rows:
            table.setdefault(bandit, {})[arm] = _stats(arm, counts)
        return table

    def arms(self, bandit: str) -> dict[str, ArmStats]:
        """The counts of each arm of `bandit` (none before its first pull)."""
        return self.totals(bandit).get(bandit, {})

    def forget_deleted(self, change: Change) -> None:
        """A store listener: drop the counts of a graph deleted (one applied again under its name is another)."""
        if change.kind == GRAPH_KIND and change.after is None and change.before is not None:
            self.forget(graph_bandits(change.namespace, change.name, change.before.uid))

    def forget(self, bandit_prefix: str) -> None:
        """Drop the counts of the bandits whose key starts with `bandit_prefix` (their graph or service is gone)."""
        with transaction(self._db):
            for table in ("bandit_arms", "bandit_gateways"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE substr(bandit, 1, ?) = ?", (len(bandit_prefix), bandit_prefix)
                )


def _stats(arm: str, counts: list[float]) -> ArmStats:
    values = {c: int(v) if c in ("pulls", "rewards") else v for c, v in zip(_COUNTS, counts, strict=True)}
    return ArmStats(arm, **values)
