"""Model downloads end to end through `wharf up`: a replica fetching its model over http shows how far it has got
(in the status, `wharf get -o wide` and `wharf apply --wait`), and a download that fails (404, 403) shows its error
in `wharf get` within seconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import xgboost

from tests.e2e.conftest import Daemon, ready, start_daemon
from tests.e2e.test_cli import running

pytestmark = pytest.mark.timeout(120)

CHUNKS, CHUNK_BYTES, PAUSE_S = 40, 60_000, 0.25  # 2.4 MB in 10 s


@dataclass
class SlowStore:
    """An HTTP server whose `/model.json` is a real XGBoost model padded to a few megabytes, sent in chunks with
    pauses; `/forbidden.json` answers 403, anything else 404."""

    body: bytes
    port: int = 0
    gets: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(store: SlowStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, with_body: bool) -> None:
            if self.path != "/model.json":
                self.send_error(403 if self.path == "/forbidden.json" else 404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(store.body)))
            self.send_header("ETag", f'"{id(store)}"')
            self.end_headers()
            if not with_body:
                return
            store.gets.append(self.path)
            for start in range(0, len(store.body), CHUNK_BYTES):
                self.wfile.write(store.body[start : start + CHUNK_BYTES])
                self.wfile.flush()
                time.sleep(PAUSE_S)

    return Handler


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SlowStore]:
    features = np.random.default_rng(0).random((50, 4))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(features, features.sum(axis=1)), num_boost_round=3)
    booster.save_model(tmp_path / "model.json")
    saved = (tmp_path / "model.json").read_bytes()
    state = SlowStore(saved + b" " * (CHUNKS * CHUNK_BYTES - len(saved)))  # JSON allows the trailing blanks
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """`wharf up` whose replicas keep their downloads in this test's own cache."""
    running_daemon = start_daemon(tmp_path / "home", env={"WHARF_STORAGE_CACHE_DIR": str(tmp_path / "cache")})
    yield running_daemon
    running_daemon.stop()


def xgboost_service(name: str, uri: str) -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}}}\n"
        f"spec: {{predictor: {{model: {{modelFormat: {{name: xgboost}}, storageUri: '{uri}'}}}}}}\n"
    )


def conditions(service: dict) -> dict[str, str]:
    return {c["type"]: c["message"] for c in service["status"].get("conditions", [])}


def test_a_download_shows_its_progress_until_the_service_is_ready(daemon: Daemon, store: SlowStore) -> None:
    path = daemon.home.parent / "slow.yaml"
    path.write_text(xgboost_service("slow", store.url("/model.json")))
    with running(daemon, "apply", "-f", str(path), "--wait", "--timeout", "90s") as apply:
        apply.until("inferenceservice/slow created")
        line = apply.until("downloading model", timeout=60)
        assert line.startswith("inferenceservice/slow: downloading model ") and "% of 2.4 MB" in line, line
        seen = daemon.wait("slow", lambda s: "downloading model" in conditions(s).get("PredictorReady", ""), 30)
        [replica] = seen["status"]["replicaStates"]
        assert replica["progress"].startswith("downloading model ") and not replica["ready"]
        assert "downloading model" in daemon.wharf("get", "isvc", "slow", "-o", "wide").stdout or ready(
            daemon.isvc("slow")
        )  # unless the download finished meanwhile
        assert apply.until("ready at", timeout=60).startswith("inferenceservice/slow: ready at http://slow.")
        assert apply.proc.wait(20) == 0
    shares = [int(line.split("downloading model ")[1].split("%")[0]) for line in apply.seen if "%" in line]
    assert shares == sorted(shares) and len(shares) >= 2, apply.seen
    service = daemon.isvc("slow")
    assert ready(service) and service["status"]["replicaStates"][0]["progress"] is None
    assert store.gets == ["/model.json"]
    answer = httpx.post(
        f"{daemon.gateway_url}/v1/models/slow:predict",
        json={"instances": [[0.1, 0.2, 0.3, 0.4]]},
        headers={"host": "slow.default.example.com"},
        timeout=10,
    )
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1, answer.text
    logged = [json.loads(line) for line in _replica_log(daemon, "slow") if '"downloading model"' in line]
    assert logged[0]["bytes_done"] == 0 and logged[-1]["bytes_done"] == logged[-1]["bytes_total"] == 2_400_000
    assert 3 <= len(logged) <= 15  # every second or tenth, not every chunk


def test_a_failed_download_shows_its_error_within_seconds(daemon: Daemon, store: SlowStore) -> None:
    for name, uri_path in (("missing", "/missing.json"), ("forbidden", "/forbidden.json")):
        daemon.wharf("apply", "-f", "-", stdin=xgboost_service(name, store.url(uri_path)))
    started = time.monotonic()
    missing = daemon.wait("missing", lambda s: "could not fetch" in conditions(s).get("Ready", ""), 30)
    forbidden = daemon.wait("forbidden", lambda s: "could not fetch" in conditions(s).get("Ready", ""), 30)
    assert time.monotonic() - started < 20, "the errors show within seconds"
    assert "404, message='Not Found'" in conditions(missing)["Ready"]
    assert "403, message='Forbidden'" in conditions(forbidden)["Ready"]
    table = daemon.wharf("get", "isvc", "-o", "wide").stdout
    for name, reason in (("missing", "404"), ("forbidden", "403")):
        [row] = [row for row in table.splitlines() if row.startswith(name)]
        assert "False" in row and "could not fetch" in row and reason in row, table


def _replica_log(daemon: Daemon, service: str) -> list[str]:
    [log] = (daemon.home / "logs").glob(f"{service}-predictor-*/*.log")
    return log.read_text().splitlines()
