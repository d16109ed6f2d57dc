"""Reading records as requests and writing their answers and dead letters."""

from __future__ import annotations

import base64

import orjson
import pytest

from wharf.eventing.messages import ANSWER_TYPE, Request, Undecodable, answer_record, dead_letter_headers, read

V2 = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}


def test_v2_and_v1_by_content() -> None:
    assert read(orjson.dumps(V2), [], "t-0-1") == Request("v2", V2, "t-0-1")
    assert read(b'{"instances": [[1, 2]]}', [], "t-0-2").kind == "v1"


def test_the_id_comes_from_the_header_then_the_v2_body_then_the_position() -> None:
    body = orjson.dumps({**V2, "id": "from-body"})
    assert read(body, [("id", b"from-header")], "t-0-1").id == "from-header"
    assert read(body, [], "t-0-1").id == "from-body"
    assert read(orjson.dumps(V2), [], "t-0-1").id == "t-0-1"


def test_binary_cloudevent() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"e1"), ("id", b"ignored")]
    request = read(orjson.dumps(V2), headers, "t-0-1", "cloudevent")
    assert (request.id, request.cloudevent, request.body) == ("e1", "binary", V2)
    with pytest.raises(Undecodable, match="without a ce_id"):
        read(orjson.dumps(V2), [("ce_specversion", b"1.0")], "t-0-1")


@pytest.mark.parametrize(
    "event",
    [
        {"specversion": "1.0", "id": "e2", "data": V2},
        {"specversion": "1.0", "id": "e2", "data": orjson.dumps(V2).decode()},
        {"specversion": "1.0", "id": "e2", "data_base64": base64.b64encode(orjson.dumps(V2)).decode()},
    ],
)
def test_structured_cloudevent(event: dict) -> None:
    request = read(orjson.dumps(event), [], "t-0-1")
    assert (request.id, request.cloudevent, request.body) == ("e2", "structured", V2)


@pytest.mark.parametrize(
    ("value", "expected", "reason"),
    [
        (None, "auto", "no value"),
        (b"{nope", "auto", "not JSON"),
        (b"[1]", "auto", "not a JSON object"),
        (b'{"a": 1}', "auto", "neither a V2 request"),
        (b'{"instances": [1]}', "v2", "no inputs field"),
        (orjson.dumps(V2), "v1", "no instances field"),
        (orjson.dumps(V2), "cloudevent", "not a CloudEvent"),
        (b'{"specversion": "1.0", "data": {}}', "auto", "without an id"),
        (b'{"specversion": "1.0", "id": "e", "data": 3}', "auto", "data is not a JSON object"),
        (b'{"specversion": "1.0", "id": "e", "data_base64": "!!"}', "auto", "not base64"),
    ],
)
def test_undecodable_records_say_why(value: bytes | None, expected: str, reason: str) -> None:
    with pytest.raises(Undecodable, match=reason):
        read(value, [], "t-0-1", expected)


def test_answers_keep_the_mode_of_their_request() -> None:
    where = [("wharf-source-offset", b"7")]
    plain, headers = answer_record(Request("v2", V2, "m1"), {"outputs": []}, where, "group")
    assert orjson.loads(plain) == {"outputs": []} and headers == [("id", b"m1"), *where]
    value, headers = answer_record(Request("v2", V2, "e1", "structured"), {"outputs": []}, where, "group")
    event = orjson.loads(value)
    assert (event["id"], event["type"], event["source"], event["data"]) == ("e1", ANSWER_TYPE, "group", {"outputs": []})
    _, headers = answer_record(Request("v2", V2, "e1", "binary"), {"outputs": []}, where, "group")
    found = dict(headers)
    assert found["ce_id"] == b"e1" and found["ce_type"] == ANSWER_TYPE.encode()
    assert all(isinstance(v, bytes) for _, v in headers)


def test_dead_letters_keep_the_request_headers_and_add_the_reason() -> None:
    headers = dead_letter_headers([("id", b"m1")], [("wharf-source-offset", b"7")], "bad input", 400)
    assert headers == [
        ("id", b"m1"),
        ("wharf-source-offset", b"7"),
        ("wharf-error", b"bad input"),
        ("wharf-status", b"400"),
    ]
    assert dict(dead_letter_headers([], [], "x" * 10_000, None))["wharf-error"] == b"x" * 4096
