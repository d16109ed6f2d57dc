"""`EventSink`: a real HTTP server that keeps the CloudEvents posted to it, as a payload logger's sink."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.http import CloudEvent, from_http


class EventSink:
    """Listens on 127.0.0.1 (a free port) and parses every POST with the CloudEvents SDK (data kept as the bytes
    sent); answers `status`, `delay_s` seconds after the event came."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.events: list[CloudEvent] = []
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                event = from_http(dict(self.headers.items()), body, data_unmarshaller=lambda data: data)
                with sink._changed:
                    sink.events.append(event)
                    sink._changed.notify_all()
                time.sleep(delay_s)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CloudEvent]:
        """The events once at least `count` have come (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.events)} events came, not {count}"
                self._changed.wait(left)
            return list(self.events)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
