"""Watches with resourceVersion semantics over a real store: from a list's version nothing is missed, a version too
old (or a watcher fallen too far behind) gets 410 Expired, bookmarks, timeouts, selectors seeing resources come and
go, and abandoned watches that leave nothing behind, over real HTTP too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.control.fakes import control_plane
from tests.unit.control.test_controller import isvc
from wharf.control.api import StreamSlots, create_app
from wharf.control.kube.selectors import Selector, selector
from wharf.control.kube.watch import ChangeLog, WatchEvent
from wharf.control.store import Store
from wharf.embedded_http import EmbeddedServer, listen

pytestmark = pytest.mark.anyio
KIND = "InferenceService"


def put(store: Store, name: str, value: int = 1, namespace: str = "default", **labels: str) -> int:
    resource, _ = store.put(KIND, namespace, name, {"metadata": {"name": name, "labels": labels}, "spec": {"v": value}})
    return resource.version


async def take(events: AsyncIterator[WatchEvent], count: int) -> list[tuple[str, str, int]]:
    """The next `count` events as (type, name, version); a bookmark's name is empty."""
    found = []
    for _ in range(count):
        event = await asyncio.wait_for(anext(events), 5)
        resource = event.resource
        found.append((event.type, resource.name if resource else "", resource.version if resource else event.version))
    return found


async def test_a_watch_from_a_lists_version_sees_every_later_change_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    log = ChangeLog(store)
    put(store, "a")
    listed = store.version  # what a list answers as its resourceVersion
    b = put(store, "b")
    a2 = put(store, "a", 2)
    store.set_status(KIND, "default", "a", {"ready": True})
    store.delete(KIND, "default", "b")
    events = log.watch(KIND, None, Selector(), since=listed)
    assert await take(events, 4) == [
        ("ADDED", "b", b),
        ("MODIFIED", "a", a2),
        ("MODIFIED", "a", a2 + 1),
        ("DELETED", "b", a2 + 2),  # the delete's own version
    ]
    put(store, "c")
    assert (await take(events, 1))[0][:2] == ("ADDED", "c")
    log.close()
    with pytest.raises(StopAsyncIteration):
        await anext(events)


async def test_without_a_version_a_watch_starts_with_what_is_there(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    log = ChangeLog(store)
    put(store, "a")
    put(store, "b", namespace="other")
    events = log.watch(KIND, "default", Selector(), bookmarks=True)
    first = await take(events, 2)
    assert first[0][:2] == ("ADDED", "a") and first[1] == ("BOOKMARK", "", store.version)
    log.close()


async def test_a_version_older_than_the_log_keeps_is_expired(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    put(store, "a")
    old = store.version
    put(store, "a", 2)
    log = ChangeLog(store, kept=2)  # started after both writes: it cannot tell what came after `old`
    expired = log.watch(KIND, None, Selector(), since=old)
    event = await anext(expired)
    assert event.type == "ERROR" and event.error is not None
    assert event.error["code"] == 410 and event.error["reason"] == "Expired"
    assert "too old resource version" in event.error["message"]
    with pytest.raises(StopAsyncIteration):  # and the watch ends
        await anext(expired)

    behind = log.watch(KIND, None, Selector(), since=store.version)
    for value in range(3, 7):  # more changes than the log keeps, before the watcher reads any
        put(store, "a", value)
    assert (await anext(behind)).type == "ERROR"
    with pytest.raises(StopAsyncIteration):
        await anext(behind)
    assert log.watchers == 0


async def test_bookmarks_and_timeouts(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    log = ChangeLog(store, bookmark_s=0.05)
    put(store, "a")
    events = log.watch(KIND, None, selector(None, "metadata.name=b"), since=store.version, bookmarks=True)
    put(store, "a", 2)  # not watched: a bookmark carries the version read up to
    assert await take(events, 1) == [("BOOKMARK", "", store.version)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    quiet = log.watch(KIND, None, Selector(), since=store.version, timeout_s=0.1)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(quiet), 5)
    assert 0.09 <= loop.time() - started < 2


async def test_a_selected_watch_sees_resources_start_and_stop_matching(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    log = ChangeLog(store)
    put(store, "z")
    events = log.watch(KIND, None, selector("tier=gold", None), since=store.version)
    put(store, "a", 1, tier="silver")  # not matching: skipped
    put(store, "a", 2, tier="gold")
    put(store, "a", 3, tier="gold")
    put(store, "a", 4, tier="silver")
    assert [e[:2] for e in await take(events, 3)] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    log.close()


async def test_watches_opened_and_dropped_leave_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    log = ChangeLog(store)
    put(store, "a")
    for _ in range(200):
        events = log.watch(KIND, None, Selector())
        await anext(events)
        await events.aclose()
    assert log.watchers == 0 and len(store._listeners) == 1  # the log's own


async def test_watches_dropped_by_their_http_clients_free_their_slots_and_tasks(tmp_path: Path) -> None:
    """Many watches over real HTTP, each dropped by its client after its first event: the server's tasks, the
    stream slots and the log's watchers all return to where they were."""
    controller = control_plane(tmp_path)
    await controller.apply(isvc("a"))
    slots = StreamSlots()
    server = EmbeddedServer(create_app(controller, streams=slots))
    task = await server.start(listen("127.0.0.1", 0))
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    try:
        for _ in range(3):
            async with httpx.AsyncClient(timeout=5) as client:
                streams = [client.stream("GET", url, params={"watch": "true"}) for _ in range(20)]
                answers: list[Any] = [await s.__aenter__() for s in streams]
                for answer in answers:
                    assert b'"type":"ADDED"' in await anext(answer.aiter_raw())
                assert slots.open == 20 and controller.changes.watchers == 20
                for stream in streams:
                    await stream.__aexit__(None, None, None)
            for _ in range(100):
                if not server.server_state.tasks and slots.open == 0:
                    break
                await asyncio.sleep(0.05)
            assert not server.server_state.tasks and slots.open == 0 and controller.changes.watchers == 0
    finally:
        controller.close()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
