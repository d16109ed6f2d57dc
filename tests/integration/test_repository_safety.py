"""The repository load API of a real `wharf serve DIR` loads only model directories inside DIR.

A name a client sends (REST `/v2/repository/models/{name}/load`, gRPC RepositoryModelLoad) that reaches outside
the repository (`..`, an absolute path, a hidden directory) is "not found", and nothing outside is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import RunningServer
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(120)
TIMEOUT_S = 30


class _Planted:
    """Unpickling it makes the directory `marker`: proof that the server loaded it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _classifier() -> LogisticRegression:
    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """`repo/good/` (a model) inside the repository; planted artifacts beside it, above it and hidden in it."""
    repo = tmp_path / "repo"
    (repo / "good").mkdir(parents=True)
    joblib.dump(_classifier(), repo / "good" / "model.joblib")
    marker = tmp_path / "unpickled"
    joblib.dump(_Planted(marker), tmp_path / "model.joblib")  # what `repo/..` finds
    (tmp_path / "outside").mkdir()
    joblib.dump(_Planted(marker), tmp_path / "outside" / "model.joblib")  # an absolute path or `../outside`
    (repo / ".hidden").mkdir()
    joblib.dump(_Planted(marker), repo / ".hidden" / "model.joblib")
    return {"repo": repo, "marker": marker, "outside": tmp_path / "outside"}


def _load_rest(server: RunningServer, raw_name: str) -> httpx.Response:
    """POST the load endpoint with `raw_name` as it is written into the path (percent-encoding kept)."""
    with httpx.Client(timeout=TIMEOUT_S) as client:
        request = client.build_request("POST", f"{server.url}/v2/repository/models/x/load")
        request.url = request.url.copy_with(raw_path=f"/v2/repository/models/{raw_name}/load".encode())
        return client.send(request)


def _load_grpc(server: RunningServer, name: str) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name=name), timeout=TIMEOUT_S
            )
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def _assert_only_good_is_known(server: RunningServer) -> None:
    index = httpx.post(f"{server.url}/v2/repository/index", timeout=TIMEOUT_S).json()
    assert [row["name"] for row in index] == ["good"]


def test_rest_names_escaping_the_repository_are_not_loaded(serve, layout: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    server = serve(str(layout["repo"]))
    for raw in ("%2E%2E", "..", ".hidden", "%2E%2E%2Foutside"):
        answer = _load_rest(server, raw)
        assert answer.status_code in (400, 404), (raw, answer.status_code, answer.text)
        assert isinstance(answer.json().get("error"), str), answer.text
        assert not layout["marker"].exists(), f"REST load of {raw!r} unpickled a file outside the repository"
    _assert_only_good_is_known(server)


def test_grpc_names_escaping_the_repository_are_not_loaded(serve, layout: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    server = serve(str(layout["repo"]))
    # An absolute path once registered the directory under its base name, loadable by that name next.
    for name in (str(layout["outside"]), "outside", "../outside", "..", ".hidden", "good/../../outside"):
        code = _load_grpc(server, name)
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), (name, code)
        assert not layout["marker"].exists(), f"gRPC load of {name!r} unpickled a file outside the repository"
    _assert_only_good_is_known(server)


def test_a_model_directory_added_later_still_loads(serve, layout: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    server = serve(str(layout["repo"]))
    (layout["repo"] / "late").mkdir()
    joblib.dump(_classifier(), layout["repo"] / "late" / "model.joblib")
    answer = _load_rest(server, "late")
    assert answer.status_code == 200, answer.text
    assert _load_grpc(server, "late") == grpc.StatusCode.OK
    ready = httpx.get(f"{server.url}/v2/models/late/ready", timeout=TIMEOUT_S)
    assert ready.status_code == 200, ready.text
