"""The bandits' statistics in the control store: cumulative gateway reports applied once each, several gateways
at once (from threads, each with its own connection) losing nothing, kept across a reopen, and the round trip
with a gateway's ledger."""

from __future__ import annotations

import threading
from pathlib import Path

from wharf.bandit.arms import ArmStats
from wharf.control.bandit_state import BanditState
from wharf.control.store import Store
from wharf.gateway.bandits import BanditLedger, BanditReport, graph_bandit
from wharf.gateway.feedback import RecentRequests

KEY = "InferenceGraph/default/g/root"


def arm(name: str, pulls: int, *rewards: float) -> ArmStats:
    stats = ArmStats(name, pulls=pulls)
    for reward in rewards:
        stats = stats.rewarded(reward)
    return stats


def test_a_report_repeated_or_superseded_counts_once(tmp_path: Path) -> None:
    state = BanditState(tmp_path / "wharf.db")
    first = BanditReport("g1", {KEY: {"a": arm("a", 2, 1.0)}})
    assert state.apply(first) == first.totals
    state.apply(first)  # sent again (a lost answer)
    assert state.arms(KEY) == {"a": arm("a", 2, 1.0)}
    state.apply(BanditReport("g1", {KEY: {"a": arm("a", 5, 1.0, 0.0), "b": arm("b", 1)}}))
    assert state.arms(KEY) == {"a": arm("a", 5, 1.0, 0.0), "b": arm("b", 1)}
    state.apply(BanditReport("g2", {KEY: {"a": arm("a", 1, 1.0)}}))  # another gateway adds up
    assert state.arms(KEY)["a"] == arm("a", 6, 1.0, 0.0, 1.0)
    assert state.totals("InferenceService/") == {}
    state.close()
    reopened = BanditState(tmp_path / "wharf.db")  # a restarted daemon
    assert reopened.arms(KEY)["a"] == arm("a", 6, 1.0, 0.0, 1.0)
    reopened.forget("InferenceGraph/default/g/")
    assert reopened.totals() == {}


def test_concurrent_gateways_lose_no_update(tmp_path: Path) -> None:
    """Two gateways report their growing totals at once, each to its own connection of the store's file."""
    database = tmp_path / "wharf.db"
    BanditState(database).close()
    reports = 100

    def gateway(name: str) -> None:
        state = BanditState(database)
        try:
            for n in range(1, reports + 1):
                state.apply(BanditReport(name, {KEY: {"a": arm("a", n, *[1.0] * (n // 2)), "b": arm("b", n)}}))
        finally:
            state.close()

    threads = [threading.Thread(target=gateway, args=(f"g{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    totals = BanditState(database).arms(KEY)
    assert totals["a"] == arm("a", 2 * reports, *[1.0] * reports)
    assert totals["b"].pulls == 2 * reports


def test_a_gateways_view_after_the_round_trip(tmp_path: Path) -> None:
    state = BanditState(tmp_path / "wharf.db")
    state.apply(BanditReport("other", {KEY: {"b": arm("b", 4, 0.0)}}))
    ledger = BanditLedger(RecentRequests(60, 100, lambda: 0.0), gateway="mine")
    for _ in range(3):
        ledger.pulled(KEY, "a")
    report = ledger.report()
    assert report is not None
    applied = state.apply(report)
    ledger.pulled(KEY, "a")  # counted while the report was on its way
    ledger.arms_state(state.totals(), applied)
    assert ledger.view(KEY, ["a", "b"]) == [arm("a", 4), arm("b", 4, 0.0)]


def test_a_deleted_graph_takes_its_counts_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    state = BanditState(tmp_path / "wharf.db")
    store.subscribe(state.forget_deleted)
    graph, _ = store.put("InferenceGraph", "default", "g", {"spec": {}})
    kept = graph_bandit("default", "other", "u2", "root")
    key = graph_bandit("default", "g", graph.uid, "root")
    state.apply(BanditReport("g1", {key: {"a": arm("a", 3)}, kept: {"a": arm("a", 1)}}))
    store.put("InferenceGraph", "default", "g", {"spec": {"changed": True}})  # applied again: the counts stay
    assert state.arms(key) == {"a": arm("a", 3)}
    store.delete("InferenceGraph", "default", "g")
    assert state.totals() == {kept: {"a": arm("a", 1)}}
