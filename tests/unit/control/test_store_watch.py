"""Watching resources through the controller (over the store's change notices), and their events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.control.fakes import Backend, control_plane
from tests.unit.control.test_controller import isvc
from wharf.control.api import create_app
from wharf.control.controller import Controller
from wharf.control.kube.objects import document
from wharf.control.kube.selectors import selector
from wharf.control.plan import ISVC_KIND
from wharf.embedded_http import EmbeddedServer, listen
from wharf.errors import NotFound


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    return control_plane(tmp_path)


async def _next(changes: Any) -> tuple[str, dict[str, Any]]:
    event = await asyncio.wait_for(anext(changes), 5)
    return event.type, document(event.resource) if event.resource else {}


def _watch(controller: Controller, namespace: str | None, name: str | None = None, **options: Any) -> Any:
    chosen = selector(None, f"metadata.name={name}" if name else None)
    return controller.changes.watch(ISVC_KIND, namespace, chosen, **options)


def test_a_watch_sends_what_is_there_then_each_change_until_closed(controller: Controller) -> None:
    async def watch() -> None:
        await controller.apply(isvc("a"))
        changes = _watch(controller, "default", bookmarks=True)
        kind, first = await _next(changes)
        assert kind == "ADDED" and first["metadata"]["name"] == "a" and first["metadata"]["generation"] == 1
        assert first["metadata"]["creationTimestamp"].endswith("Z")
        assert (await _next(changes))[0] == "BOOKMARK"
        await controller.apply(isvc("b"))
        await controller.apply(isvc("b", namespace="elsewhere"))  # not watched
        seen = [await _next(changes)]
        while seen[-1][1]["metadata"]["name"] != "b" or seen[-1][0] != "ADDED":
            seen.append(await _next(changes))
        await controller.apply(isvc("a", who="z"))
        while (found := await _next(changes))[1]["metadata"]["name"] != "a":
            seen.append(found)
        assert found[0] == "MODIFIED" and found[1]["metadata"]["generation"] == 2
        await controller.delete(ISVC_KIND, "default", "a")
        while (found := await _next(changes))[0] != "DELETED":
            assert found[1]["metadata"]["name"] in ("a", "b")
        assert found[1]["metadata"]["name"] == "a"
        controller.close()
        with pytest.raises(StopAsyncIteration):
            await _next(changes)
        assert all(e[1]["metadata"]["namespace"] == "default" for e in seen)

    asyncio.run(watch())


def test_a_watch_of_one_name_sees_only_it(controller: Controller) -> None:
    async def watch() -> list[str]:
        changes = _watch(controller, None, "b", bookmarks=True)
        assert (await _next(changes))[0] == "BOOKMARK"
        await controller.apply(isvc("a"))
        await controller.apply(isvc("b"))
        kind, found = await _next(changes)
        controller.close()
        return [kind, found["metadata"]["name"]]

    assert asyncio.run(watch()) == ["ADDED", "b"]


def test_events_are_kept_per_resource(controller: Controller) -> None:
    asyncio.run(controller.apply(isvc("a")))
    events = controller.events_of(ISVC_KIND, "default", "a")
    assert [e["reason"] for e in events][:2] == ["RevisionCreated", "TrafficMoved"]
    assert events[0]["involvedObject"] == {"kind": ISVC_KIND, "namespace": "default", "name": "a"}
    with pytest.raises(NotFound):
        controller.events_of(ISVC_KIND, "default", "missing")


class Logs(Backend):
    """A backend whose one replica writes its log under `home`, as the local backend lays them out."""

    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = home

    def log_path(self, revision: str, replica_id: str) -> Path:
        return self.home / "logs" / revision / f"{replica_id}.log"


def test_streams_end_when_their_client_goes_and_leave_the_loop_free(tmp_path: Path) -> None:
    """A watch and a followed log over real HTTP: other requests answer meanwhile, and once the client closes
    its connection, the server's request task ends (nothing goes on polling for it)."""
    controller = control_plane(tmp_path, Logs(tmp_path))
    log = tmp_path / "logs" / "a-predictor-00001" / "r1.log"
    log.parent.mkdir(parents=True)
    log.write_text("started\n")

    async def exercise() -> None:
        await controller.apply(isvc("a"))
        server = EmbeddedServer(create_app(controller))
        task = await server.start(listen("127.0.0.1", 0))
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                for url, params, first in (
                    (base, {"watch": "true"}, b'"type":"ADDED"'),
                    (f"{base}/a/log", {"follow": "true", "revision": "1"}, b"started"),
                ):
                    async with client.stream("GET", url, params=params) as answer:
                        assert answer.status_code == 200
                        assert first in await anext(answer.aiter_raw())
                        health = await client.get(f"http://127.0.0.1:{port}/healthz")
                        assert health.status_code == 200
                        assert server.server_state.tasks  # the stream's
                    for _ in range(100):  # the client closed its stream: the server's task for it ends
                        if not server.server_state.tasks:
                            break
                        await asyncio.sleep(0.05)
                    assert not server.server_state.tasks, url
            assert controller.changes.watchers == 0  # the watch let go
        finally:
            controller.close()
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    asyncio.run(exercise())
