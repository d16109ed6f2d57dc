"""What the REST proxy hands the payload logger of an exchange with a revision that has a `logger`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from wharf.gateway.upstream import Answer, Headers
from wharf.logger import LogTarget, PayloadEvent, PayloadLogger

REQUEST_ID = b"x-request-id"
_DEFAULT_CONTENT_TYPE = "application/json"


def log_exchange(
    logger: PayloadLogger, target: LogTarget | None, headers: Headers, body: bytes
) -> Callable[[Answer], None] | None:
    """Log a request to a revision whose `logger` is `target` (as its mode says), and return what logs the answer
    (None: nothing to log). A request without an `x-request-id` gets one in `headers`, so that the replica and both
    events share it."""
    if target is None:
        return None
    request_id = _header(headers, REQUEST_ID)
    if request_id is None:
        request_id = uuid.uuid4().hex
        headers.append((REQUEST_ID, request_id.encode()))
    metadata = {
        name: values
        for name in target.metadata_headers
        if (values := [v.decode("latin-1") for k, v in headers if k.decode("latin-1") == name])
    }
    if target.requests:
        logger.submit(PayloadEvent(target, request_id, body, _content_type(headers), metadata))
    if not target.responses:
        return None

    def log_answer(answer: Answer) -> None:
        logger.submit(
            PayloadEvent(target, request_id, answer.body, _content_type(answer.headers), metadata, answer.status)
        )

    return log_answer


def _header(headers: Headers, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in headers if key == name), None)


def _content_type(headers: Headers) -> str:
    return _header(headers, b"content-type") or _DEFAULT_CONTENT_TYPE
