"""The control API's side of the web console, behind the real guard: the page and its files open, every datum behind
a token, the caller's role, revisions with secrets hidden, the history, the try-it and monitor routes' refusals, and
apply's dry run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.unit.control.fakes import control_plane
from wharf.console.assets import console_routes
from wharf.control.api import create_app
from wharf.control.auth import ControlGuard, Credentials
from wharf.control.console_api import console_router
from wharf.control.controller import Controller
from wharf.control.history import History
from wharf.control.monitor_view import MonitorView
from wharf.control.redaction import HIDDEN

pytestmark = pytest.mark.anyio
WHARF = "/apis/wharf.dev/v1"
SERVICE = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor:
    model:
      modelFormat: {name: custom}
      storageUri: wharf_test_models:WhoAmI
      env: [{name: WHO, value: top-secret-value}, {name: DATA_URL, value: "https://me:pw@data.example.com/b?sig=1"}]
"""


class Console:
    def __init__(self, home: Path) -> None:
        self.controller: Controller = control_plane(home)
        self.credentials, _ = Credentials.load_or_create(home)
        self.history = History()
        self.monitor = MonitorView(None, self.history)
        routers = [console_routes(), console_router(self.controller, self.history, self.monitor, "http://gw:8000")]
        app = ControlGuard(create_app(self.controller, routers=routers), self.credentials)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1:8002")

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {getattr(self.credentials, role)}"}


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    made = Console(tmp_path)
    yield made
    await made.client.aclose()
    await made.monitor.close()


async def test_the_page_and_its_files_need_no_token_and_data_does(console: Console) -> None:
    page = await console.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    script = await console.client.get("/console/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    again = await console.client.get("/console/js/main.js", headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert (await console.client.get("/console/vendor/uPlot.iife.min.js")).status_code == 200
    for missing in ("/console/nothing.js", "/console/%2e%2e/assets.py", "/console/index.html"):
        answer = await console.client.get(missing)
        assert answer.status_code == 404 and "error" in answer.json(), missing
    for data in (f"{WHARF}/console", f"{WHARF}/revisions", f"{WHARF}/history", f"{WHARF}/monitor/status"):
        refused = await console.client.get(data)
        assert refused.status_code == 401 and refused.json()["error"], data


async def test_the_console_learns_who_is_asking(console: Console) -> None:
    admin = (await console.client.get(f"{WHARF}/console", headers=console.headers())).json()
    assert admin == {
        "role": "admin",
        "version": admin["version"],
        "gatewayUrl": "http://gw:8000",
        "domain": "example.com",
        "monitor": False,
        "history": {"intervalS": 10.0, "keepS": 3600.0},
    }
    assert (await console.client.get(f"{WHARF}/console", headers=console.headers("viewer"))).json()["role"] == "viewer"
    tried = await console.client.post(
        f"{WHARF}/namespaces/default/inferenceservices/iris/infer", headers=console.headers("viewer"), json={}
    )
    assert tried.status_code == 403 and "only read" in tried.json()["error"]


async def test_revisions_show_what_changed_with_every_secret_hidden(console: Console) -> None:
    applied = await console.client.post(
        "/apis/apply", content=SERVICE, headers={**console.headers(), "content-type": "application/yaml"}
    )
    assert applied.status_code == 200, applied.text
    shown = await console.client.get(
        f"{WHARF}/namespaces/default/inferenceservices/iris/revisions", headers=console.headers()
    )
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert "top-secret-value" not in shown.text and "pw@" not in shown.text and "sig=1" not in shown.text
    [revision] = body["components"]["predictor"]
    assert revision["name"] == "iris-predictor-00001" and revision["number"] == 1
    assert revision["spec"]["env"]["WHO"].startswith(HIDDEN)
    assert body["spec"]["predictor"]["model"]["env"][0]["value"].startswith(HIDDEN)
    assert body["metadata"] == {"name": "iris", "namespace": "default"}
    missing = await console.client.get(
        f"{WHARF}/namespaces/default/inferenceservices/nope/revisions", headers=console.headers()
    )
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


async def test_history_and_live_figures_are_served_as_recorded(console: Console) -> None:
    console.history.record("metric/m1", 100.0, {"value": 0.5})
    console.history.record("metric/m1", 110.0, {"value": None})
    console.history.record("revision/r1", 110.0, {"rps": 2.0})
    answer = (await console.client.get(f"{WHARF}/history?prefix=metric/&since=105", headers=console.headers())).json()
    assert answer == {"series": {"metric/m1": {"t": [110.0], "value": [None]}}}
    named = (await console.client.get(f"{WHARF}/history?series=revision/r1", headers=console.headers())).json()
    assert list(named["series"]) == ["revision/r1"]
    assert (await console.client.get(f"{WHARF}/revisions", headers=console.headers())).json() == {"items": {}}
    wrong = await console.client.get(f"{WHARF}/history?since=-1", headers=console.headers())
    assert wrong.status_code == 400 and "since" in wrong.json()["error"]


async def test_try_it_and_the_monitor_say_what_is_wrong(console: Console) -> None:
    await console.client.post(
        "/apis/apply", content=SERVICE, headers={**console.headers(), "content-type": "application/yaml"}
    )
    infer = f"{WHARF}/namespaces/default/inferenceservices/iris/infer"
    unreachable = await console.client.post(infer, headers=console.headers(), json={"instances": [[1]]})
    assert unreachable.status_code == 502 and "gateway did not answer" in unreachable.json()["error"]
    wrong = await console.client.post(f"{infer}?protocol=v3", headers=console.headers(), json={})
    assert wrong.status_code == 400 and "protocol" in wrong.json()["error"]
    unknown = await console.client.post(
        f"{WHARF}/namespaces/default/inferenceservices/nope/infer", headers=console.headers(), json={}
    )
    assert unknown.status_code == 404
    none = await console.client.get(f"{WHARF}/monitor/status", headers=console.headers())
    assert none.status_code == 502 and "WHARF_MONITOR_ENABLED" in none.json()["error"]
    elsewhere = await console.client.get(f"{WHARF}/monitor/data/upload", headers=console.headers())
    assert elsewhere.status_code == 404 and "data/upload" in elsewhere.json()["error"]


async def test_a_dry_run_checks_and_stores_nothing(console: Console) -> None:
    headers = {**console.headers(), "content-type": "application/yaml"}
    checked = await console.client.post("/apis/apply?dryRun=All", content=SERVICE, headers=headers)
    assert checked.status_code == 200 and checked.json()["results"][0]["result"] == "created"
    assert console.controller.list("InferenceService") == []
    bad = await console.client.post(
        "/apis/apply?dryRun=All", content=SERVICE.replace("name: iris", "name: Iris"), headers=headers
    )
    assert bad.status_code == 400 and "metadata.name" in bad.json()["error"]
    assert (await console.client.post("/apis/apply?dryRun=Some", content=SERVICE, headers=headers)).status_code == 400
    await console.client.post("/apis/apply", content=SERVICE, headers=headers)
    again = await console.client.post("/apis/apply?dryRun=All", content=SERVICE, headers=headers)
    assert again.json()["results"][0]["result"] == "unchanged"
    changed = await console.client.post(
        "/apis/apply?dryRun=All", content=SERVICE.replace("top-secret", "other"), headers=headers
    )
    assert changed.json()["results"][0]["result"] == "configured"
    assert console.controller.store.get("InferenceService", "default", "iris").generation == 1
