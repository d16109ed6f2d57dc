"""Payload log events in KServe's inference-logger format: CloudEvents 1.0 in HTTP binary mode.

A request and its response are two events sharing one `id` (the request's `x-request-id`), of types
`org.kubeflow.serving.inference.request` and `...response`, whose body is the payload exactly as it was sent, with
its content type. Extension attributes name the InferenceService, namespace, component and endpoint (the revision
that served it); `metadata` holds the request headers the logger was asked to keep (`metadataHeaders`), as a JSON
object of lists keyed as the logger names them (always there when it names any), and a response's `statuscode`
its HTTP status. Header values stay ASCII: `metadata` escapes other characters as JSON does, other attributes
percent-encode them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

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

    def to_http(self) -> tuple[dict[str, str], bytes]:
        """The event's HTTP headers and body (binary content mode)."""
        target = self.target
        attributes = {
            "type": REQUEST_TYPE if self.status is None else RESPONSE_TYPE,
            "source": target.source,
            "id": self.id,
            "datacontenttype": self.content_type,
            "inferenceservicename": target.service,
            "namespace": target.namespace,
            "component": target.component,
            "endpoint": target.endpoint,
        }
        if target.metadata_headers:
            attributes["metadata"] = json.dumps(self.metadata, ensure_ascii=True, separators=(",", ":"))
        if self.status is not None:
            attributes["statuscode"] = str(self.status)
        headers, body = to_binary(CloudEvent(attributes, self.body))
        return {key: _header_value(key, value) for key, value in headers.items()}, body


# What a ce- header keeps as it is: printable ASCII and space. The HTTP binding would percent-encode '"', '%' and
# space too, but the CloudEvents Python SDK does not decode headers, so its users would get the encoded text; only
# what HTTP cannot carry is encoded (UTF-8).
_PLAIN = "".join(chr(c) for c in range(0x20, 0x7F))


def _header_value(key: str, value: str) -> str:
    """A header value HTTP can carry: a ce- attribute's characters beyond ASCII percent-encoded; another header
    that is not ASCII (a client's content type) becomes application/octet-stream."""
    if key.startswith("ce-"):
        return value if value.isascii() and value.isprintable() else quote(value, safe=_PLAIN)
    return value if value.isascii() else "application/octet-stream"
