"""The control API on a real 127.0.0.1 socket, in a thread of its own, over the real controller, reconciler and
store with a backend whose replicas are ready as soon as they are asked for (those of a revision whose WHO is
`broken` fail instead): what the SDK's unit tests talk to. No gateway listens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wharf.client.blocking import LoopThread
from wharf.control.api import create_app
from wharf.control.backends import ReplicaState
from wharf.embedded_http import EmbeddedServer, listen

from ..control.fakes import Backend, control_plane

BROKEN = "RuntimeError: this revision is broken"


class ReadyBackend(Backend):
    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        return [
            self._replica(name, index)
            for name, count in self.scaled.items()
            if revision in (None, name)
            for index in range(count)
        ]

    def _replica(self, revision: str, index: int) -> ReplicaState:
        broken = self.specs[revision].env.get("WHO") == "broken"
        return ReplicaState(
            f"{revision}-{index}", revision, 0, 0, 0, not broken, 0, None, 0.0, last_error=BROKEN if broken else None
        )


def manifest(name: str, who: str = "a", canary: int | None = None, namespace: str = "default") -> str:
    """An InferenceService of a custom class (never run here) whose revisions WHO tells apart."""
    percent = f"    canaryTrafficPercent: {canary}\n" if canary is not None else ""
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  predictor:\n{percent}    model:\n      modelFormat: {{name: custom}}\n"
        f"      storageUri: models:WhoAmI\n      env: [{{name: WHO, value: {who}}}]\n"
    )


@contextmanager
def serving(make: Callable[[], tuple[Any, Callable[[], None]]]) -> Iterator[str]:
    """The URL of the ASGI app that `make()` returns (in the server's thread) with what ends its streams, called
    before the server stops."""
    loop = LoopThread("control-api")

    async def start() -> tuple[Callable[[], None], EmbeddedServer, asyncio.Task[None], int]:
        app, close = make()
        listener = listen("127.0.0.1", 0)
        server = EmbeddedServer(app)
        return close, server, await server.start(listener), listener.getsockname()[1]

    close, server, task, port = loop.run(start())

    async def stop() -> None:
        close()
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.run(stop())
        loop.stop()


@contextmanager
def control_api(home: Path) -> Iterator[str]:
    """The control API's URL while it serves."""

    def make() -> tuple[Any, Callable[[], None]]:
        controller = control_plane(home, ReadyBackend())
        return create_app(controller), controller.close

    with serving(make) as url:
        yield url
