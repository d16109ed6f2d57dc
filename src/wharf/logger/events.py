"""Payload log events in KServe's inference-logger format: CloudEvents 1.0 in HTTP binary mode.

A request and its response are two events sharing one `id` (the request's `x-request-id`), of types
`org.kubeflow.serving.inference.request` and `...response`, whose body is the payload exactly as it was sent, with
its content type. Extension attributes name the InferenceService, namespace, component and endpoint (the revision
that served it); `metadata` holds the request headers the logger was asked to keep (`metadataHeaders`), as a JSON
object of lists keyed as the logger names them (always there when it names any), a response's `statuscode` its
HTTP status, and `inferenceheadercontentlength` the length of the JSON part of a body that carries binary tensors
(its Inference-Header-Content-Length). Header values stay ASCII: `metadata` escapes other characters as JSON does,
other attributes percent-encode them. A streamed answer (server-sent events of OpenAI's API) is logged as the answer
its events add up to (streams.py), once the stream ended. An event made while its request was traced carries that trace's context
(`traceparent`, `tracestate`) as HTTP headers, so that the sink's spans join the request's trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from wharf.logger.streams import assembled

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
Mode = Literal["all", "request", "response"]


@dataclass(frozen=True, slots=True)
class LogTarget:
    """Where a revision's payloads go and what names them (the InferenceService component's `logger`)."""

    url: str
    mode: Mode
    service: str  # the InferenceService
    namespace: str
    component: str  # predictor or transformer
    endpoint: str  # the revision
    source: str  # the events' `source`: the component's URL
    metadata_headers: tuple[str, ...] = ()  # request headers copied into the events, as `metadataHeaders` names them

    @property
    def requests(self) -> bool:
        return self.mode != "response"

    @property
    def responses(self) -> bool:
        return self.mode != "request"


@dataclass(frozen=True, slots=True)
class PayloadEvent:
    """One payload to log, as the gateway saw it; `status` is None for a request."""

    target: LogTarget
    id: str
    body: bytes
    content_type: str
    metadata: dict[str, list[str]]
    status: int | None = None
    json_length: str | None = None  # the body's JSON part, when it uses the binary tensor extension
    trace: Mapping[str, str] | None = None  # the trace context headers of the request's span, while tracing is on

    def to_http(self) -> tuple[dict[str, str], bytes]:
        """The event's HTTP headers and body (binary content mode).

        Written here rather than with the CloudEvents SDK's `to_binary`, which costs about 24 µs an event (two
        events a request, on the gateway's core); the tests read every event back with the SDK.
        """
        target = self.target
        body, content_type = assembled(self.body, self.content_type)
        headers = {
            "content-type": content_type if content_type.isascii() else "application/octet-stream",
            "ce-specversion": "1.0",
            "ce-id": _ascii(self.id),
            "ce-source": _ascii(target.source),
            "ce-type": REQUEST_TYPE if self.status is None else RESPONSE_TYPE,
            "ce-time": datetime.now(UTC).isoformat(),
            "ce-inferenceservicename": target.service,
            "ce-namespace": target.namespace,
            "ce-component": target.component,
            "ce-endpoint": target.endpoint,
        }
        if target.metadata_headers:
            headers["ce-metadata"] = json.dumps(self.metadata, ensure_ascii=True, separators=(",", ":"))
        if self.status is not None:
            headers["ce-statuscode"] = str(self.status)
        if self.json_length is not None:
            headers["ce-inferenceheadercontentlength"] = _ascii(self.json_length)
        if self.trace:
            headers.update(self.trace)
        return headers, body


# What a ce- header keeps as it is: printable ASCII and space. The HTTP binding would percent-encode '"', '%' and
# space too, but the CloudEvents Python SDK does not decode headers, so its users would get the encoded text; only
# what HTTP cannot carry is encoded (UTF-8).
_PLAIN = "".join(chr(c) for c in range(0x20, 0x7F))


def _ascii(value: str) -> str:
    """An attribute as a header can carry it: characters beyond printable ASCII percent-encoded (UTF-8)."""
    return value if value.isascii() and value.isprintable() else quote(value, safe=_PLAIN)
