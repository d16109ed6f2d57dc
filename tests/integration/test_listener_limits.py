"""Limits before the first byte, against a real `wharf serve` (every HTTP listener is the same EmbeddedServer):
idle and half-sent connections, huge or countless headers, a full server; and the gRPC listener's limits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import orjson
import pytest

from tests.integration.conftest import RunningServer, launch
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

HEADER_TIMEOUT_S = 2.0
PROBE = b"GET /v2/health/live HTTP/1.1\r\nhost: wharf\r\n\r\n"


@pytest.fixture(scope="module")
def echo() -> Iterator[RunningServer]:
    """An Echo server whose connections must send their headers within HEADER_TIMEOUT_S."""
    server = launch("wharf_test_models:Echo", "--name", "echo", env={"WHARF_HTTP_HEADER_TIMEOUT_S": "2"})
    yield server
    server.stop()


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Status, head and body of the one answer on `sock` (read up to its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return int(head.split(b" ", 2)[1]), head, body


def closed(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes `sock` within `within_s` (what it may send first is read and dropped)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: closed too
    return True


def probe(server: RunningServer) -> int:
    """The status of a health probe on a new connection (which must be answered within 3 s)."""
    return httpx.get(f"{server.url}/v2/health/live", timeout=3).status_code


def test_idle_connections_are_closed_and_do_not_lock_clients_out(echo: RunningServer) -> None:
    kept = connect(echo)  # a client that used its connection before the flood: it keeps it
    kept.sendall(PROBE)
    assert answer(kept)[0] == 200
    idle = [connect(echo) for _ in range(2000)]  # more than the listener's 1024: the oldest make room
    try:
        started = time.monotonic()
        assert probe(echo) == 200
        kept.sendall(PROBE)
        assert answer(kept)[0] == 200
        assert time.monotonic() - started < 3
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 3
        assert all(closed(s, max(deadline - time.monotonic(), 0.01)) for s in idle)
    finally:
        for s in idle:
            s.close()
        kept.close()


def test_headers_that_do_not_come_in_time_are_answered_408(echo: RunningServer) -> None:
    half_sent = [connect(echo) for _ in range(50)]
    try:
        for s in half_sent:
            s.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: wharf\r\ncontent-")
        started = time.monotonic()
        answers = [answer(s) for s in half_sent]
        assert HEADER_TIMEOUT_S - 0.5 < time.monotonic() - started < HEADER_TIMEOUT_S + 2
        assert {(status, body) for status, _, body in answers} == {
            (408, orjson.dumps({"error": f"request headers not received within {HEADER_TIMEOUT_S} s"}))
        }
        assert all(b"connection: close" in head for _, head, _ in answers)
        assert probe(echo) == 200
    finally:
        for s in half_sent:
            s.close()


def test_a_150_mb_header_line_is_answered_431_at_once(echo: RunningServer) -> None:
    sock = connect(echo)
    line = b"x-huge: " + b"a" * (150 * 2**20)
    sender = threading.Thread(target=_send_ignoring_errors, args=(sock, b"GET /v2 HTTP/1.1\r\n" + line), daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        status, head, body = answer(sock)
        assert time.monotonic() - started < 2
        assert status == 431 and b"content-type: application/json" in head
        assert orjson.loads(body) == {"error": "request headers exceed the limit of 32768 bytes"}
        assert probe(echo) == 200
    finally:
        sock.close()
        sender.join(10)


def test_ten_thousand_headers_are_answered_431(echo: RunningServer) -> None:
    with connect(echo) as sock:
        many = b"".join(b"x-h%d: v\r\n" % i for i in range(10_000))
        _send_ignoring_errors(sock, b"GET /v2 HTTP/1.1\r\nhost: wharf\r\n" + many + b"\r\n")
        status, _, body = answer(sock)
    assert status == 431
    assert orjson.loads(body) == {"error": "more than 100 request headers"}
    assert probe(echo) == 200


def test_a_full_server_with_no_idle_connection_answers_503(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Slow", "--name", "slow", env={"WHARF_HTTP_MAX_CONNECTIONS": "2"})
    slow = orjson.dumps({"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP64", "data": [1.5]}]})
    request = b"POST /v2/models/slow/infer HTTP/1.1\r\nhost: wharf\r\ncontent-length: %d\r\n\r\n%s" % (len(slow), slow)
    busy = [connect(server), connect(server)]
    try:
        for s in busy:
            s.sendall(request)
        time.sleep(0.5)  # both requests are in the model now: no connection is idle
        with connect(server) as extra:
            extra.sendall(PROBE)
            status, head, body = answer(extra)
            assert status == 503 and b"connection: close" in head
            assert orjson.loads(body) == {"error": "the server is at its limit of 2 connections"}
        assert [answer(s)[0] for s in busy] == [200, 200]
    finally:
        for s in busy:
            s.close()
    assert probe(server) == 200


def test_grpc_refuses_oversized_metadata_and_connections_beyond_its_limit(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo", env={"WHARF_GRPC_MAX_CONNECTIONS": "1"})
    target = f"127.0.0.1:{server.grpc_port}"
    live = "/inference.GRPCInferenceService/ServerLive"
    request = pb.ServerLiveRequest().SerializeToString()
    with grpc.insecure_channel(target) as first, grpc.insecure_channel(
        target, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as second:
        assert pb.ServerLiveResponse.FromString(first.unary_unary(live)(request, timeout=5)).live
        with pytest.raises(grpc.RpcError) as refused:
            first.unary_unary(live)(request, metadata=(("x-big", "a" * 64 * 2**10),), timeout=5)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as beyond:
            second.unary_unary(live)(request, timeout=5)
        assert beyond.value.code() is grpc.StatusCode.UNAVAILABLE
        assert pb.ServerLiveResponse.FromString(first.unary_unary(live)(request, timeout=5)).live


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    """Send `data`; the server may close the connection before all of it went (it refused it)."""
    try:
        sock.sendall(data)
    except OSError:
        pass
