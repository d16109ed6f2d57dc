"""The control API's guard on its own: odd Host, Origin and token values are refused, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.control.auth import ControlGuard, Credentials, host_allowed

pytestmark = pytest.mark.anyio


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _status(guard: ControlGuard, headers: list[tuple[bytes, bytes]], method: str = "GET") -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/apis/x", "headers": headers}
    await guard(scope, None, send)
    return sent[0]["status"]


@pytest.fixture
def guard(tmp_path: Path) -> ControlGuard:
    return ControlGuard(_app, Credentials.load_or_create(tmp_path)[0])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"host", b"127.0.0.1:1"), (b"authorization", "Bearer é".encode())], 401),
        ([(b"host", b"127.0.0.1:1"), (b"authorization", b"Bearer \xff\xfe")], 401),
        ([(b"host", b"[")], 403),
        ([(b"host", b"127.0.0.1:1"), (b"origin", b"http://[")], 403),
    ],
)
async def test_odd_values_are_refused_not_crashed_on(
    guard: ControlGuard, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    assert await _status(guard, headers) == status


async def test_tokens_open_by_role(guard: ControlGuard) -> None:
    admin = [(b"host", b"localhost:8002"), (b"authorization", f"Bearer {guard.credentials.admin}".encode())]
    viewer = [(b"host", b"localhost:8002"), (b"authorization", f"Bearer {guard.credentials.viewer}".encode())]
    assert await _status(guard, admin, "DELETE") == 200
    assert await _status(guard, viewer, "GET") == 200
    assert await _status(guard, viewer, "DELETE") == 403


def test_hosts_answered_to() -> None:
    assert host_allowed("127.0.0.1:8002", ()) and host_allowed("[::1]:8002", ()) and host_allowed("localhost", ())
    assert not host_allowed("evil.example.com", ()) and host_allowed("wharf.internal:80", ("wharf.internal",))
