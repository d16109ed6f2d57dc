"""`HttpSink`: a real HTTP server on 127.0.0.1 (a free port), in a thread of its own, that keeps what the POSTs to
it carry and lets a test wait for them. tests/event_sink.py (CloudEvents) and tests/otlp_receiver.py (spans) say
what a POST carries and how it is answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None


class HttpSink(Generic[T]):
    """Listens until `close`; `take` (a subclass's) turns each POST into an answer, keeping what it carries with
    `keep`. Thread-safe."""

    def __init__(self) -> None:
        self.received: list[T] = []
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                answer = sink.take(self.path, dict(self.headers.items()), body)
                self.send_response(answer.status)
                if answer.content_type:
                    self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def take(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`"""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def keep(self, items: Iterable[T]) -> None:
        with self._changed:
            self.received.extend(items)
            self._changed.notify_all()

    def wait_until(self, found: Callable[[list[T]], bool], timeout: float, why: Callable[[list[T]], str]) -> list[T]:
        """Everything received, once `found(received)` holds; AssertionError with `why(received)` after `timeout`
        seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not found(self.received):
                left = deadline - time.monotonic()
                assert left > 0, why(self.received)
                self._changed.wait(left)
            return list(self.received)

    def clear(self) -> None:
        with self._changed:
            self.received.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
