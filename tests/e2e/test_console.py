"""The web console in a real headless Chromium (Debian's `chromium`, driven by Playwright) against one real `wharf up`:
the page lists an applied service; a canary applied from the YAML panel shows the split (after a refused one named
its field); promote from the page changes the split in the control API; the "try it" panel gets a prediction; a
service scaled to zero shows zero replicas and comes back on a request; a viewer's page can change nothing. Every
page is screenshotted into the test's temporary directory, for a failure to be looked at."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon
from tests.programs import program

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST_WINDOW = {"autoscaling.knative.dev/window": "6s"}  # Knative's shortest stable window
WAIT_MS = 30_000
FIRST, SECOND = "alpha-value", "bravo-value"  # what `who` answers: its env WHO, hidden in the spec views
V2_BODY = '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}'
SLOW_SIGN_IN = """{  // who the token is (the console's first answer) comes a second late, as over a slow network
  const fetch = window.fetch;
  window.fetch = (path, options) =>
    String(path).endsWith("/apis/wharf.dev/v1/console") ? new Promise((done) => setTimeout(done, 1000)).then(() => fetch(path, options)) : fetch(path, options);
}"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `wharf up` for the module, its monitor on (metrics recomputed every second), the console's history
    sampled every second; `who` (one replica) and `idle` (scales to zero) applied."""
    env = {
        "WHARF_MONITOR_ENABLED": "true",
        "WHARF_MONITOR_METRICS_INTERVAL_S": "1",
        "WHARF_MONITOR_FLUSH_INTERVAL_S": "0.05",
        "WHARF_HISTORY_INTERVAL_S": "1",
    }
    running = start_daemon(tmp_path_factory.mktemp("console") / "home", env=env)
    try:
        running.wharf("apply", "-f", "-", stdin=manifest("who", FIRST))
        idle = manifest("idle", "z", predictor={"minReplicas": 0}, annotations=FAST_WINDOW)
        running.wharf("apply", "-f", "-", stdin=idle)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=program(CHROMIUM, "chromium"), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(daemon: Daemon, browser: Any) -> Iterator[Any]:
    """The console signed in as the admin, through `wharf console`'s address; the page's errors are collected in
    `page.problems` (a script error or a refused resource fails the test that follows)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.problems = []
    opened.on("pageerror", lambda error: opened.problems.append(str(error)))
    opened.on("console", lambda message: message.type == "error" and opened.problems.append(message.text))
    address = daemon.wharf("console").stdout.strip()
    assert address.startswith(f"{daemon.control_url}/#token=")
    opened.goto(address)
    yield opened
    context.close()


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def eventually(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return found


def predictor_traffic(daemon: Daemon, name: str) -> dict[str, int]:
    service = daemon.isvc(name)
    return {t["revisionName"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]}


def no_problems(page: Any) -> None:
    assert page.problems == []


def test_the_page_lists_an_applied_service(daemon: Daemon, page: Any, tmp_path: Path) -> None:
    row = page.locator("#services tr[data-name=who]")
    row.locator(".badge.ok").wait_for()
    assert "http://who.default.example.com" in row.locator("td[data-col=url]").inner_text()
    assert row.locator(".split .segment").count() == 1
    assert "token" not in page.url  # moved to the tab's session, out of the address bar
    assert page.evaluate("sessionStorage.getItem('wharf.token')") == daemon.token
    assert page.locator("#who").inner_text() == "admin"
    shot(page, tmp_path, "services")
    no_problems(page)


def test_a_canary_applied_from_the_yaml_panel_shows_the_split(daemon: Daemon, page: Any, tmp_path: Path) -> None:
    page.click("a[data-view=apply]")
    page.fill("#manifest", manifest("who", SECOND, canary=300))
    page.click("#validate")
    problem = page.locator("#apply-outcome .problems li").first
    problem.wait_for()
    assert "spec.predictor.canaryTrafficPercent" in problem.inner_text() and "line 7" in problem.inner_text()
    shot(page, tmp_path, "apply-refused")
    page.problems.clear()  # the browser reports the refusal's 400 as an error

    page.fill("#manifest", manifest("who", SECOND, canary=30))
    page.click("#validate")
    page.locator("#apply-outcome .ok", has_text="Valid").wait_for()
    assert len(predictor_traffic(daemon, "who")) == 1  # a check stores nothing
    page.click("#apply")
    page.locator("#apply-outcome", has_text="configured").wait_for()
    shot(page, tmp_path, "apply")

    page.click("a[data-view=services]")
    split = page.locator("#services tr[data-name=who] .split")
    split.locator(".segment").nth(1).wait_for()  # once the canary's replica is ready
    assert sorted(split.locator(".segment").evaluate_all("s => s.map(e => +e.dataset.percent)")) == [30, 70]
    assert sorted(predictor_traffic(daemon, "who").values()) == [30, 70]
    shot(page, tmp_path, "services-canary")
    no_problems(page)


def test_promote_from_the_page_changes_the_split_in_the_control_api(daemon: Daemon, page: Any, tmp_path: Path) -> None:
    page.click("#services tr[data-name=who] a")
    page.locator("#split-predictor .segment").nth(1).wait_for()
    page.locator("#autoscaler tr").nth(2).wait_for()
    page.click("#promote")
    page.click("#confirm-ok")
    assert eventually(lambda: predictor_traffic(daemon, "who") == {"who-predictor-00002": 100}, "promoted")
    segments = page.locator("#split-predictor .segment")
    sync_api.expect(segments).to_have_count(1)  # the page's polling saw it (no reload)
    assert segments.get_attribute("data-revision") == "who-predictor-00002"
    changed = page.locator(".component-revisions pre.diff .add").all_inner_texts()
    assert any('"WHO": "••••••' in line for line in changed), changed  # changed, its value hidden
    shown = page.locator(".revisions").inner_text()
    assert FIRST not in shown and SECOND not in shown
    shot(page, tmp_path, "service")
    no_problems(page)


def test_the_try_it_panel_gets_a_prediction(page: Any, tmp_path: Path) -> None:
    page.select_option("#try-protocol", "v2")
    page.fill("#try-body", V2_BODY)
    page.click("#try-send")
    answer = page.locator("#try-answer.ok")
    answer.wait_for()
    assert answer.inner_text().startswith("200 in") and SECOND in answer.inner_text()
    shot(page, tmp_path, "try-it")
    no_problems(page)


def test_a_service_scaled_to_zero_shows_zero_replicas_and_comes_back(daemon: Daemon, page: Any, tmp_path: Path) -> None:
    daemon.wait("idle", lambda s: s["status"]["replicas"] == 0 and ready(s), timeout=40)
    page.goto(f"{daemon.control_url}/#/services/default/idle")
    page.locator("[data-component=predictor] .replica-list", has_text="scaled to zero").wait_for()
    page.click("a[data-view=services]")
    replicas = page.locator("#services tr[data-name=idle] td[data-col=replicas]")
    sync_api.expect(replicas).to_have_text("0/0")
    shot(page, tmp_path, "scaled-to-zero")

    asked = httpx.post(
        f"{daemon.gateway_url}/v2/models/idle/infer",
        content=V2_BODY,
        headers={"host": "idle.default.example.com"},
        timeout=30,
    )
    assert asked.status_code == 200, asked.text
    sync_api.expect(replicas).to_have_text(re.compile(r"^1/"))
    shot(page, tmp_path, "scaled-back")
    no_problems(page)


def test_the_service_graph_shows_who_calls_whom(page: Any, tmp_path: Path) -> None:
    page.click("a[data-view=graph]")
    page.locator("#service-graph .node[data-id='default/who:predictor']").wait_for()
    page.locator("#service-graph .edge[data-from=client][data-to='default/who:predictor']").wait_for()
    shot(page, tmp_path, "graph")
    no_problems(page)


def test_monitoring_shows_a_drifting_column_within_its_bounds_over_time(
    daemon: Daemon, page: Any, tmp_path: Path
) -> None:
    monitor = httpx.Client(base_url=json.loads((daemon.home / "daemon.json").read_text())["monitor_url"], timeout=30)
    with monitor:
        steady, moved = [float(i % 10) for i in range(100)], [float(i % 10) + 20 for i in range(100)]
        for tag, (a, b) in (("TRAINING", (steady, steady)), (None, (moved, steady))):  # no tag: as if logged
            inputs = [
                {"name": name, "shape": [100], "datatype": "FP64", "data": data} for name, data in zip("ab", (a, b))
            ]
            upload = {"model_name": "drifty", "request": {"inputs": inputs}} | ({"data_tag": tag} if tag else {})
            assert monitor.post("/data/upload", json=upload).status_code == 200
        body = {"modelId": "drifty", "referenceTag": "TRAINING", "requestName": "columns"}
        assert monitor.post("/metrics/drift/meanshift/request", json=body).status_code == 200
        assert monitor.post("/detectors/outliers", json={"modelId": "drifty"}).status_code == 200
    page.click("a[data-view=monitoring]")
    page.locator("#monitored-models tr", has_text="drifty").wait_for()
    card = page.locator(".metric", has_text="MEANSHIFT of drifty (columns)")
    card.locator(".badge.bad", has_text="outside bounds").wait_for()
    assert card.locator(".drifting .column").all_inner_texts() == ["a"]
    card.locator("canvas").wait_for()  # the values over time, with their bounds
    row = page.locator("#monitored-models tr", has_text="drifty").element_handle()
    page.wait_for_function("row => !row.isConnected", arg=row)  # the view's next poll has redrawn its rows...
    sync_api.expect(page.locator(".metric canvas")).to_have_count(1)  # ...and kept the one card, with its chart
    page.locator("#detectors tr", has_text="drifty").wait_for()
    shot(page, tmp_path, "monitoring")
    no_problems(page)


def test_a_viewer_can_look_but_change_nothing(daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context()
    viewer = context.new_page()
    viewer.set_default_timeout(WAIT_MS)
    viewer.goto(daemon.wharf("console", "--viewer").stdout.strip())
    viewer.locator("#services tr[data-name=who]").wait_for()
    assert "read only" in viewer.locator("#who").inner_text()
    viewer.goto(f"{daemon.control_url}/#/services/default/who")
    for button in ("#promote", "#rollback", "#set-canary", "#try-send"):
        assert viewer.locator(button).is_disabled()
    shot(viewer, tmp_path, "viewer")
    context.close()


def test_a_view_left_while_the_page_signs_in_polls_once(daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.add_init_script(SLOW_SIGN_IN)
    asked: list[float] = []
    opened.on("request", lambda request: request.url.endswith("/servicegraph") and asked.append(time.monotonic()))
    opened.goto(daemon.wharf("console").stdout.strip())
    opened.click("a[data-view=graph]")  # while the first view still waits to know who signed in
    opened.locator("#service-graph .node").first.wait_for()
    opened.wait_for_timeout(4500)  # two more turns of the graph's 2 s poll
    gaps = [later - earlier for earlier, later in zip(asked, asked[1:])]
    assert len(asked) >= 2 and min(gaps) > 1.5, gaps  # one poll: each turn 2 s after the last one ended
    assert opened.locator("#view > h1").all_inner_texts() == ["Service graph"]
    shot(opened, tmp_path, "graph-after-slow-sign-in")
    context.close()
