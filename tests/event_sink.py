"""`EventSink`: a real HTTP server that keeps the CloudEvents posted to it, as a payload logger's sink."""

from __future__ import annotations

import time
from collections.abc import Mapping

from cloudevents.http import CloudEvent, from_http

from tests.http_sink import Answer, HttpSink


class EventSink(HttpSink[CloudEvent]):
    """Listens on 127.0.0.1 (a free port) and parses every POST with the CloudEvents SDK (data kept as the bytes
    sent); answers `status`, `delay_s` seconds after the event came."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self._answer = Answer(status)
        self._delay_s = delay_s
        super().__init__()

    def take(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        self.keep([from_http(dict(headers), body, data_unmarshaller=lambda data: data)])
        time.sleep(self._delay_s)
        return self._answer

    @property
    def events(self) -> list[CloudEvent]:
        return self.received

    @property
    def url(self) -> str:
        return self.origin + "/"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CloudEvent]:
        """The events once at least `count` have come (AssertionError after `timeout` seconds)."""
        return self.wait_until(
            lambda got: len(got) >= count, timeout, lambda got: f"{len(got)} events came, not {count}"
        )
