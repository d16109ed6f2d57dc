"""The consumer's infer calls against a real HTTP server on 127.0.0.1: answers, refusals, and retries with backoff
of what may pass."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from wharf.eventing.settings import ConsumerSettings
from wharf.eventing.sink import Refused, Sink


@pytest.fixture
async def server() -> AsyncIterator[Callable[[list[tuple[int, bytes]]], str]]:
    """`server(answers)`: the base URL of a server that gives `answers` in turn (then the last again), recording
    each request's path and Host header in `seen`."""
    runners: list[web.AppRunner] = []

    async def start(answers: list[tuple[int, bytes]]) -> str:
        seen: list[tuple[str, str]] = []

        async def handle(request: web.Request) -> web.Response:
            seen.append((request.path, request.headers["host"]))
            status, body = answers[min(len(seen), len(answers)) - 1]
            return web.Response(status=status, body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        start.seen = seen  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


def settings(url: str, **extra: object) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers="b:1", topics="t", group_id="g", sink_url=url, model="iris", retry_initial_s=0.01,
        retry_max_s=0.02, request_timeout_s=5, **extra,
    )  # fmt: skip


@pytest.mark.anyio
async def test_answers_through_the_gateway_path_and_host(server: Callable) -> None:
    url = await server([(200, b'{"outputs": []}')])
    sink = Sink(
        settings(url, sink_host="iris.default.example.com", sink_path_prefix="/serving/default/iris"), lambda: None
    )
    try:
        assert await sink.answer("v2", {"inputs": []}) == {"outputs": []}
        assert await sink.answer("v1", {"instances": []}) == {"outputs": []}
    finally:
        await sink.close()
    assert server.seen == [  # type: ignore[attr-defined]
        ("/serving/default/iris/v2/models/iris/infer", "iris.default.example.com"),
        ("/serving/default/iris/v1/models/iris:predict", "iris.default.example.com"),
    ]


@pytest.mark.anyio
async def test_5xx_and_429_are_retried_4xx_refused(server: Callable) -> None:
    retries: list[int] = []
    url = await server(
        [(503, b'{"error": "busy"}'), (429, b"{}"), (200, b'{"outputs": [1]}'), (400, b'{"error": "bad shape"}')]
    )
    sink = Sink(settings(url), lambda: retries.append(1))
    try:
        assert await sink.answer("v2", {"inputs": []}) == {"outputs": [1]}
        assert len(retries) == 2
        with pytest.raises(Refused) as refused:
            await sink.answer("v2", {"inputs": []})
        assert (refused.value.reason, refused.value.status) == ("bad shape", 400)
    finally:
        await sink.close()


@pytest.mark.anyio
async def test_retries_run_out_into_a_refusal_without_status(server: Callable) -> None:
    url = await server([(500, b'{"error": "broken"}')])
    sink = Sink(settings(url, max_retries=2), lambda: None)
    try:
        with pytest.raises(Refused) as refused:
            await sink.answer("v2", {"inputs": []})
    finally:
        await sink.close()
    assert refused.value.status is None and refused.value.reason == "gave up after 3 tries: 500: broken"
    assert len(server.seen) == 3  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_refused_connection_is_retried() -> None:
    sink = Sink(settings("http://127.0.0.1:9", max_retries=1), lambda: None)
    try:
        with pytest.raises(Refused, match="gave up after 2 tries"):
            await sink.answer("v2", {"inputs": []})
    finally:
        await sink.close()
