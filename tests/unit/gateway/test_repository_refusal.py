"""The REST proxy refuses the model repository API however its path is spelled, and forwards nothing of it."""

from __future__ import annotations

import orjson
import pytest

from wharf.gateway.proxy import REPOSITORY_REFUSED, _is_repository_api
from wharf.gateway.upstream import Headers

from .test_proxy import call, proxy

pytestmark = pytest.mark.anyio

IRIS = [(b"host", b"iris.default.example.com")]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository",
        "/v2/repository/models/iris/unload",
        "/v2/%72epository/models/iris/unload",
        "/v2%2Frepository/models/iris/load",
        "/%76%32/repository/index",
        "//v2//repository/index",
        "/v2/./repository/index",
        "/v2/models/../repository/index",
        "/x/../v2/repository/index",
    ],
)
def test_repository_paths(path: str) -> None:
    assert _is_repository_api(path)


@pytest.mark.parametrize(
    "path", ["/v2/models/iris/infer", "/v2/models/repository/infer", "/v2", "/v1/models/iris:predict", "/v2/repo"]
)
def test_other_paths(path: str) -> None:
    assert not _is_repository_api(path)


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/repository/models/iris/unload", IRIS),
        ("/serving/default/iris/v2/repository/models/iris/unload", [(b"host", b"127.0.0.1")]),
        ("/v2/%72epository/index", IRIS),
    ],
)
async def test_refused_with_403_and_nothing_forwarded(method: str, path: str, headers: Headers) -> None:
    app, upstream = proxy()
    status, answer_headers, body = await call(app, path, headers, b"{}", method=method)
    assert (status, answer_headers[b"content-type"], orjson.loads(body)) == (
        403,
        b"application/json",
        {"error": REPOSITORY_REFUSED},
    )
    assert upstream.sent == []
