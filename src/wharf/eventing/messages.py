"""Reading a Kafka record as an inference request, and writing the records that answer it.

A record is one of (`format` auto tells them apart in this order):
- a CloudEvent in binary mode: a `ce_specversion` header, the `ce_*` headers its attributes, the value its data;
- a CloudEvent in structured mode: a JSON object with `specversion` (or content type
  `application/cloudevents+json`), its `data` (or `data_base64`) the request;
- a V2 request (a JSON object with `inputs`) or a V1 request (one with `instances`).
Its id is the CloudEvent's id, else the record's `id` header, else the V2 request's `id`, else
`topic-partition-offset`. A record that is none of these raises `Undecodable` with the reason.

The answer (`answer_record`) keeps the request's key and carries the `id` header and where the request came from
(`wharf-source-topic`, `-partition`, `-offset`); a CloudEvent is answered in the mode it came in, with type
`org.kubeflow.serving.inference.response`. A dead letter (`dead_letter_record`) is the request's own key, value and
headers with the reason added (`wharf-error`, and `wharf-status` when a server answered).

Cost per record: one orjson parse of its value and a few header lookups; no copies of the value.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Kind = Literal["v2", "v1"]
Mode = Literal["binary", "structured"] | None
Headers = list[tuple[str, bytes]]

ANSWER_TYPE = "org.kubeflow.serving.inference.response"
ID_HEADER = "id"
ERROR_HEADER = "wharf-error"
STATUS_HEADER = "wharf-status"
_CE_JSON = b"application/cloudevents+json"


class Undecodable(Exception):
    """A record that is no request this consumer reads; the message says why."""


@dataclass(slots=True)
class Request:
    """One record read as a request: `body` is its V1/V2 JSON object."""

    kind: Kind
    body: dict[str, Any]
    id: str
    cloudevent: Mode = None


def read(value: bytes | None, headers: Headers, fallback_id: str, expected: str = "auto") -> Request:
    """The request in a record (`expected`: auto, v2, v1 or cloudevent), or `Undecodable`."""
    found = {name: raw for name, raw in headers}
    if value is None:
        raise Undecodable("the record has no value")
    ce_id: bytes | str | None = None
    mode: Mode = None
    if "ce_specversion" in found:
        mode, ce_id = "binary", found.get("ce_id")
        if not ce_id:
            raise Undecodable("a binary-mode CloudEvent without a ce_id header")
        body = _json(value)
    else:
        body = _json(value)
        if "specversion" in body or found.get("content-type", b"").startswith(_CE_JSON):
            mode, (body, ce_id) = "structured", _structured(body)
    if expected == "cloudevent" and mode is None:
        raise Undecodable("not a CloudEvent (no ce_specversion header, no specversion field)")
    kind: Kind
    if "inputs" in body and expected != "v1":
        kind = "v2"
    elif "instances" in body and expected != "v2":
        kind = "v1"
    else:
        wanted = {"v2": "a V2 request (no inputs field)", "v1": "a V1 request (no instances field)"}
        raise Undecodable(wanted.get(expected, "neither a V2 request (inputs) nor a V1 request (instances)"))
    if ce_id is not None:
        ident = ce_id.decode(errors="replace") if isinstance(ce_id, bytes) else str(ce_id)
    elif ID_HEADER in found:
        ident = found[ID_HEADER].decode(errors="replace")
    elif kind == "v2" and isinstance(body.get("id"), str) and body["id"]:
        ident = body["id"]
    else:
        ident = fallback_id
    return Request(kind, body, ident, mode)


def _json(value: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise Undecodable(f"the value is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Undecodable("the value is not a JSON object")
    return doc


def _structured(event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(data, id) of a structured-mode CloudEvent."""
    ident = event.get("id")
    if not isinstance(ident, str) or not ident:
        raise Undecodable("a structured CloudEvent without an id")
    if "data_base64" in event:
        try:
            data: Any = _json(base64.b64decode(event["data_base64"], validate=True))
        except (ValueError, TypeError):
            raise Undecodable("the CloudEvent's data_base64 is not base64") from None
    else:
        data = event.get("data")
        if isinstance(data, str):
            data = _json(data.encode())
    if not isinstance(data, dict):
        raise Undecodable("the CloudEvent's data is not a JSON object")
    return data, ident


def source_headers(topic: str, partition: int, offset: int) -> Headers:
    return [
        ("wharf-source-topic", topic.encode()),
        ("wharf-source-partition", str(partition).encode()),
        ("wharf-source-offset", str(offset).encode()),
    ]


def answer_record(request: Request, answer: dict[str, Any], where: Headers, producer: str) -> tuple[bytes, Headers]:
    """The value and headers answering `request` with the JSON object `answer`; `producer` is the CloudEvent
    source of answers (the consumer group)."""
    ident = request.id.encode()
    headers = [(ID_HEADER, ident), *where]
    if request.cloudevent == "structured":
        event = {
            "specversion": "1.0", "id": request.id, "type": ANSWER_TYPE, "source": producer,
            "datacontenttype": "application/json", "data": answer,
        }  # fmt: skip
        return orjson.dumps(event), [("content-type", _CE_JSON), *headers]
    if request.cloudevent == "binary":
        headers += [
            ("ce_specversion", b"1.0"), ("ce_id", ident), ("ce_type", ANSWER_TYPE.encode()), ("ce_source", producer.encode()),
            ("content-type", b"application/json"),
        ]  # fmt: skip
    return orjson.dumps(answer), headers


def dead_letter_headers(headers: Headers, where: Headers, reason: str, status: int | None) -> Headers:
    """The request's own headers, then where it came from and why it is a dead letter."""
    added = [(ERROR_HEADER, reason.encode()[:4096])]
    if status is not None:
        added.append((STATUS_HEADER, str(status).encode()))
    return [*headers, *where, *added]
