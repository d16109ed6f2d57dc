"""A Bandit InferenceGraph on `wharf up`: three iris classifiers as arms, a client that rewards one of them, the
traffic moving to it, bad feedback refused, the figures in the control API, `wharf describe` and the console (a
headless Chromium), and the state kept across a restart of `wharf up` (one daemon for the module, restarted by the
last test)."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import pytest
from playwright import sync_api
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from tests.e2e.conftest import Daemon, _leftover_pids, graph, ready, start_daemon
from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS
from tests.programs import program

pytestmark = pytest.mark.slow

ARMS = ("iris-a", "iris-b", "iris-c")
REWARDED = "iris-b"
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
HOST = {"host": "pick.default.example.com"}
FIGURES = "/apis/wharf.dev/v1/namespaces/default/inferencegraphs/pick/bandit"


class Plane:
    """The module's daemon, which the restart test replaces."""

    def __init__(self, home: Path, roots: str) -> None:
        self.home, self.roots = home, roots
        self.asked = self.rewarded = 0  # requests to the graph, and rewards it took, in this module
        self.daemon = self.start()

    def start(self) -> Daemon:
        return start_daemon(self.home, env={"WHARF_POLICY_STORAGE_ROOTS": self.roots})


def _manifests(models: Path) -> str:
    services = "".join(
        "---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}}}\nspec:\n  predictor:\n"
        f"    model: {{modelFormat: {{name: sklearn}}, storageUri: '{models / f'{name}.joblib'}'}}\n"
        for name in ARMS
    )
    root = {"routerType": "Bandit", "policy": "ThompsonSampling", "steps": [{"serviceName": name} for name in ARMS]}
    return services + graph("pick", "Bandit", nodes={"root": root})


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    where = tmp_path_factory.mktemp("bandit")
    models = where / "models"
    models.mkdir()
    x, y = load_iris(return_X_y=True)
    classifiers = (LogisticRegression(max_iter=500), DecisionTreeClassifier(max_depth=2), KNeighborsClassifier(3))
    for name, classifier in zip(ARMS, classifiers, strict=True):
        joblib.dump(classifier.fit(x, y), models / f"{name}.joblib")
    running = Plane(where / "home", json.dumps([str(models)]))
    running.daemon.wharf("apply", "-f", "-", stdin=_manifests(models))
    try:
        for name in ARMS:
            running.daemon.wait(name, ready, timeout=120)
        yield running
    finally:
        running.daemon.stop()
        leftovers = _leftover_pids(where)
        assert not leftovers, f"processes left running: {leftovers}"


def _ask(client: httpx.Client, plane: Plane) -> tuple[str, str]:
    plane.asked += 1
    answer = client.post("/serving/default/pick", json=ROW)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [0]}
    return answer.headers["x-request-id"], answer.headers["x-wharf-arm"]


def _reward(client: httpx.Client, body: dict, path: str = "/serving/default/pick/feedback") -> httpx.Response:
    return client.post(path, json=body)


def test_the_rewarded_arm_takes_the_traffic(plane: Plane) -> None:
    recent: deque[str] = deque(maxlen=100)
    with httpx.Client(base_url=plane.daemon.gateway_url, timeout=20) as client:
        for _ in range(2000):
            request_id, arm = _ask(client, plane)
            assert arm in ARMS
            recent.append(arm)
            answer = _reward(client, {"request_id": request_id, "reward": 1 if arm == REWARDED else 0})
            assert answer.status_code == 200, answer.text
            assert answer.json()["arms"] == [arm]
            plane.rewarded += 1
            if len(recent) == recent.maxlen and recent.count(REWARDED) > 0.8 * len(recent):
                break
        else:
            raise AssertionError(f"{REWARDED} never took 80% of 100 requests in a row within 2000: {recent}")

    figures = _landed(plane)
    arms = {arm["name"]: arm for arm in figures["nodes"]["root"]["arms"]}
    assert figures["nodes"]["root"]["policy"] == "ThompsonSampling"
    assert arms[REWARDED]["meanReward"] == 1.0 and arms[REWARDED]["probability"] > 0.8
    assert all(arms[name]["meanReward"] in (0.0, None) for name in ARMS if name != REWARDED)
    described = plane.daemon.wharf("describe", "ig", "pick").stdout
    assert "Bandit root:  ThompsonSampling" in described and REWARDED in described, described


def test_bad_feedback_is_refused(plane: Plane) -> None:
    with httpx.Client(base_url=plane.daemon.gateway_url, timeout=20) as client:
        request_id, arm = _ask(client, plane)
        unknown = _reward(client, {"request_id": "no-such-request", "reward": 1})
        assert unknown.status_code == 404 and "unknown" in unknown.json()["error"]
        not_json = client.post("/serving/default/pick/feedback", content=b"{reward")
        assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
        no_reward = _reward(client, {"request_id": request_id})
        assert no_reward.status_code == 400 and no_reward.json()["error"].startswith("reward:")
        outside = _reward(client, {"request_id": request_id, "reward": 3})  # Beta-Bernoulli: 0 to 1
        assert outside.status_code == 400 and outside.json()["error"].startswith("reward:")
        # Seldon's shape, by the graph's host
        seldon = {"response": {"meta": {"puid": request_id}}, "reward": 1, "truth": [0]}
        taken = client.post("/feedback", json=seldon, headers=HOST)
        assert taken.status_code == 200 and taken.json()["arms"] == [arm], taken.text
        plane.rewarded += 1
        again = client.post("/feedback", json=seldon, headers=HOST)
        assert again.status_code == 409 and "already rewarded" in again.json()["error"]


def test_the_console_shows_the_arms(plane: Plane) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=program(CHROMIUM, "chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(plane.daemon.wharf("console").stdout.strip())
            row = page.locator(f"#bandits tr[data-arm={REWARDED}]")
            row.wait_for()
            cells = row.locator("td").all_inner_texts()
            assert cells[:3] == [REWARDED, REWARDED, "yes"] and int(cells[3]) > 0, cells
            assert "ThompsonSampling" in page.locator("#bandits h3").inner_text()
            assert problems == []
        finally:
            browser.close()


def test_the_state_survives_a_restart(plane: Plane) -> None:
    before = _landed(plane)
    pulls = {arm["name"]: (arm["pulls"], arm["rewards"]) for arm in before["nodes"]["root"]["arms"]}
    assert plane.daemon.stop() == 0
    plane.daemon = plane.start()
    for name in ARMS:
        plane.daemon.wait(name, ready, timeout=120)
    after = _figures(plane.daemon, lambda figures: True)
    assert {arm["name"]: (arm["pulls"], arm["rewards"]) for arm in after["nodes"]["root"]["arms"]} == pulls
    with httpx.Client(base_url=plane.daemon.gateway_url, timeout=20) as client:
        chosen = [_ask(client, plane)[1] for _ in range(20)]
    assert chosen.count(REWARDED) >= 15, chosen  # it goes on where it left off


def _landed(plane: Plane) -> dict:
    """The graph's bandit figures once they count every request and reward of the module (the gateway pushes its
    counts every 0.25 s)."""

    def counted(figures: dict) -> bool:
        arms = figures["nodes"]["root"]["arms"]
        return (sum(a["pulls"] for a in arms), sum(a["rewards"] for a in arms)) == (plane.asked, plane.rewarded)

    figures = _figures(plane.daemon, counted)
    assert counted(figures), (figures, plane.asked, plane.rewarded)
    return figures


def _figures(daemon: Daemon, condition, timeout_s: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    """The graph's bandit figures once `condition` holds of them."""
    deadline = time.monotonic() + timeout_s
    with daemon.control() as control:
        while True:
            answer = control.get(FIGURES)
            assert answer.status_code == 200, answer.text
            if condition(answer.json()) or time.monotonic() > deadline:
                return answer.json()
            time.sleep(0.25)
