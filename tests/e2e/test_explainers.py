"""Explainers on `wharf up`: `spec.explainer` runs as a component of its own beside the predictor and answers the
service's explain requests over V1, V2 REST and gRPC (tree SHAP for scikit-learn, XGBoost and LightGBM; Kernel SHAP
for a model behind a transformer; ART's adversarial examples), and refuses what it cannot explain."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm
import numpy as np
import pytest
import tritonclient.grpc as triton
import xgboost
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tests.e2e.conftest import Daemon, ready, start_daemon

pytestmark = pytest.mark.slow

FEATURES = 6
ROWS = np.array([[0.5, -1.0, 2.0, 0.0, 1.5, -0.5], [-2.0, 0.3, 0.1, 1.0, -1.0, 2.0], [1.0, 1.0, -1.0, -2.0, 0.0, 0.7]])


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Models of six features (a forest, an XGBoost and a LightGBM booster, a logistic regression), background rows
    with a header, a background of the wrong width, and a digits classifier for the adversarial attack."""
    where = tmp_path / "artifacts"
    (where / "xgb").mkdir(parents=True)
    x, y = make_classification(400, FEATURES, n_informative=4, random_state=0)
    joblib.dump(RandomForestClassifier(30, max_depth=6, random_state=0).fit(x, y), where / "forest.joblib")
    booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y).get_booster()
    booster.save_model(where / "xgb" / "model.json")
    lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y).booster_.save_model(where / "lightgbm.txt")
    joblib.dump(LogisticRegression().fit(x, y), where / "linear.joblib")
    header = ",".join(f"f{i}" for i in range(FEATURES))
    np.savetxt(where / "background.csv", x[:40], delimiter=",", header=header, comments="")
    np.savetxt(where / "narrow.csv", x[:40, :3], delimiter=",", header="a,b,c", comments="")
    digits = load_digits()
    joblib.dump(LogisticRegression(max_iter=2000).fit(digits.data, digits.target), where / "digits.joblib")
    return where


@pytest.fixture
def explaining(tmp_path: Path, artifacts: Path) -> Iterator[Daemon]:
    """`wharf up` that may load models from the artifacts' directory."""
    roots = json.dumps([str(artifacts)])
    running = start_daemon(tmp_path / "home", env={"WHARF_POLICY_STORAGE_ROOTS": roots})
    yield running
    running.stop()


def service(name: str, predictor: str, explainer: str, transformer: str = "") -> str:
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: {name}}}\nspec:\n"
        f"{transformer}  predictor:\n{predictor}{explainer}"
    )


def framework(name: str, uri: Path, protocol: str = "v1") -> str:
    return f"    model: {{modelFormat: {{name: {name}}}, protocolVersion: {protocol}, storageUri: '{uri}'}}\n"


def shap(**fields: Any) -> str:
    return f"  explainer:\n    shap: {json.dumps(fields)}\n"


def host(name: str) -> dict[str, str]:
    return {"host": f"{name}.default.example.com"}


def v1_explain(daemon: Daemon, name: str, rows: Any, path: str | None = None) -> httpx.Response:
    url = f"{daemon.gateway_url}{path or f'/v1/models/{name}:explain'}"
    return httpx.post(url, json={"instances": np.asarray(rows).tolist()}, headers=host(name), timeout=60)


def v2_explain(daemon: Daemon, name: str, rows: np.ndarray) -> httpx.Response:
    body = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
    }
    return httpx.post(f"{daemon.gateway_url}/v2/models/{name}/explain", json=body, headers=host(name), timeout=60)


def tensors(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer["outputs"] if o["datatype"] != "BYTES"}


def grpc_explain(daemon: Daemon, name: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    """ModelInfer on `{name}-explainer` through the gateway, with tritonclient (any plain V2 client)."""
    client = triton.InferenceServerClient(f"127.0.0.1:{daemon.grpc_port}")
    try:
        sent = triton.InferInput("input-0", list(rows.shape), "FP64")
        sent.set_data_from_numpy(rows.astype(np.float64))
        names = ("contributions", "base_values", "predictions")
        outputs = [triton.InferRequestedOutput(n) for n in names]
        answer = client.infer(f"{name}-explainer", [sent], outputs=outputs, headers=host(name), client_timeout=60)
        return {n: answer.as_numpy(n) for n in names}
    finally:
        client.close()


def additive(explained: dict[str, np.ndarray], tolerance: float) -> None:
    """Base value + the sum of a row's contributions is the model's output for that row, class by class."""
    total = explained["base_values"][np.newaxis, :] + explained["contributions"].sum(axis=1)
    np.testing.assert_allclose(total, explained["predictions"], atol=tolerance)


def conditions(daemon: Daemon, name: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["message"]) for c in daemon.isvc(name)["status"]["conditions"]}


def test_tree_shap_explains_forests_and_boosters_the_same_on_every_protocol(
    explaining: Daemon, artifacts: Path
) -> None:
    models = {
        "forest": framework("sklearn", artifacts / "forest.joblib"),
        "xgb": framework("xgboost", artifacts / "xgb" / "model.json", "v2"),
        "lgbm": framework("lightgbm", artifacts / "lightgbm.txt"),
    }
    for name, predictor in models.items():
        explainer = shap(storageUri=str(artifacts / "background.csv"), sampleSize=40)
        explaining.wharf("apply", "-f", "-", stdin=service(name, predictor, explainer))
    forest = joblib.load(artifacts / "forest.joblib")
    for name in models:
        status = explaining.wait(name, ready, timeout=180)["status"]
        assert status["components"]["explainer"]["url"] == f"http://{name}-explainer.default.example.com"
        assert conditions(explaining, name)["ExplainerReady"] == ("True", "")

        v1 = v1_explain(explaining, name, ROWS)
        assert v1.status_code == 200, v1.text
        body = v1.json()
        assert body["method"] == "shap.tree" and len(body["explanations"]) == len(ROWS)
        first = body["explanations"][0]
        assert first["feature_names"] == [f"f{i}" for i in range(FEATURES)]  # the background's header
        v2 = v2_explain(explaining, name, ROWS)
        assert v2.status_code == 200, v2.text
        assert v2.json()["parameters"]["explainer"] == "shap.tree"
        explained = tensors(v2.json())
        additive(explained, 1e-6)
        by_grpc = grpc_explain(explaining, name, ROWS)
        for output, values in explained.items():
            np.testing.assert_allclose(by_grpc[output], values, atol=1e-12)
        np.testing.assert_allclose(first["contributions"], explained["contributions"][0], atol=1e-12)
        # The same request at the service's /serving/ path reaches the explainer too.
        by_path = v1_explain(explaining, name, ROWS, path=f"/serving/default/{name}/v1/models/{name}:explain")
        assert by_path.json() == body
    # A forest's tree SHAP adds up to its probabilities; the boosters' to their margins, as the answer says.
    forest_explained = tensors(v2_explain(explaining, "forest", ROWS).json())
    np.testing.assert_allclose(forest_explained["predictions"], forest.predict_proba(ROWS), atol=1e-9)
    margins = v2_explain(explaining, "xgb", ROWS).json()["outputs"]
    assert next(o for o in margins if o["name"] == "predictions")["parameters"]["output_space"] == "margin"
    # Predictions still go to the predictor; the explainer is listed with the service.
    predicted = httpx.post(
        f"{explaining.gateway_url}/v1/models/forest:predict",
        json={"instances": ROWS.tolist()},
        headers=host("forest"),
        timeout=30,
    )
    assert predicted.json()["predictions"] == forest.predict(ROWS).tolist()
    described = explaining.wharf("describe", "isvc", "forest").stdout
    assert "ExplainerReady" in described and "forest-explainer-00001" in described


def test_kernel_shap_behind_a_transformer_adversarial_examples_and_services_without_an_explainer(
    explaining: Daemon, artifacts: Path
) -> None:
    transformer = (
        "  transformer:\n    model:\n      modelFormat: {name: custom}\n      storageUri: wharf_test_models:Scale\n"
        "      env: [{name: FACTOR, value: '2'}]\n"
    )
    kernel = shap(type="Kernel", storageUri=str(artifacts / "background.csv"), sampleSize=20, nSamples=200)
    linear = framework("sklearn", artifacts / "linear.joblib")
    explaining.wharf("apply", "-f", "-", stdin=service("scaled", linear, kernel, transformer))
    art = (
        "  explainer:\n    art:\n      type: SquareAttack\n"
        "      config: {nb_classes: '10', max_iter: '50', eps: '4.0', clip_min: '0', clip_max: '16'}\n"
    )
    explaining.wharf(
        "apply", "-f", "-", stdin=service("digits", framework("sklearn", artifacts / "digits.joblib"), art)
    )
    explaining.wharf("apply", "-f", "-", stdin=service("plain", linear, ""))
    for name in ("scaled", "digits", "plain"):
        explaining.wait(name, ready, timeout=180)

    # Kernel SHAP explains the predictor (the transformer is for predictions) and adds up within 1e-2.
    model = joblib.load(artifacts / "linear.joblib")
    answer = v2_explain(explaining, "scaled", ROWS)
    assert answer.status_code == 200, answer.text
    explained = tensors(answer.json())
    assert answer.json()["parameters"]["explainer"] == "shap.kernel"
    additive(explained, 1e-2)
    np.testing.assert_allclose(explained["predictions"], model.predict_proba(ROWS), atol=1e-9)
    v1 = v1_explain(explaining, "scaled", ROWS).json()
    np.testing.assert_allclose(v1["explanations"][1]["contributions"], explained["contributions"][1], atol=1e-12)
    predicted = httpx.post(
        f"{explaining.gateway_url}/v1/models/scaled:predict", json={"instances": ROWS.tolist()}, headers=host("scaled")
    )
    through_transformer = [row["y"] for row in predicted.json()["predictions"]]
    assert through_transformer == model.predict(ROWS * 2).tolist()

    # ART's SquareAttack, asked as KServe's ART explainer is asked, answers as it does.
    digits = load_digits()
    image, label = digits.images[0], int(digits.target[0])
    attacked = httpx.post(
        f"{explaining.gateway_url}/v1/models/digits:explain",
        json={"instances": [image.tolist(), label]},
        headers=host("digits"),
        timeout=120,
    )
    assert attacked.status_code == 200, attacked.text
    found = attacked.json()["explanations"]
    classifier = joblib.load(artifacts / "digits.joblib")
    example = np.asarray(found["adversarial_example"]).reshape(1, -1)
    assert found["prediction"] == label
    assert found["adversarial_prediction"] == classifier.predict(example)[0] != label
    assert found["L2 error"] == pytest.approx(np.linalg.norm(example - image.reshape(1, -1)))

    # A service without an explainer answers 501 saying how to add one, on every protocol.
    for answer in (v1_explain(explaining, "plain", ROWS), v2_explain(explaining, "plain", ROWS)):
        assert answer.status_code == 501 and "add spec.explainer" in answer.json()["error"]
    with pytest.raises(Exception, match="add spec.explainer"):
        grpc_explain(explaining, "plain", ROWS)


def test_bad_input_a_mismatched_background_a_full_pool_and_the_deadline(explaining: Daemon, artifacts: Path) -> None:
    forest = framework("sklearn", artifacts / "forest.joblib")
    background = str(artifacts / "background.csv")
    explaining.wharf(
        "apply", "-f", "-", stdin=service("narrow", forest, shap(storageUri=str(artifacts / "narrow.csv")))
    )
    # One explanation thread each; `slow`'s predictor takes 2 ms a row, so an explanation (62 coalitions of 40
    # background rows: one call of 2,480 rows) takes about 5 s, past its deadline of 1 s.
    one_thread = [{"name": "WHARF_PREDICT_THREADS", "value": "1"}]
    waiting = [*one_thread, {"name": "WHARF_MAX_QUEUED_EXPLANATIONS", "value": "1"}]
    no_wait = [*one_thread, {"name": "WHARF_MAX_QUEUED_EXPLANATIONS", "value": "0"}]
    kernel = shap(type="Kernel", storageUri=background, sampleSize=40, env=waiting)
    explaining.wharf("apply", "-f", "-", stdin=service("forest", forest, kernel))
    kernel = shap(type="Kernel", storageUri=background, sampleSize=40, env=no_wait)
    row_sum = (
        "    model:\n      modelFormat: {name: custom}\n      storageUri: wharf_test_models:RowSum\n"
        "      env: [{name: SLEEP_PER_ROW_S, value: '0.002'}]\n"
    )
    explaining.wharf(
        "apply", "-f", "-", stdin=service("slow", row_sum, kernel.replace("shap:", "timeout: 1\n    shap:"))
    )
    explaining.wait("forest", ready, timeout=180)
    explaining.wait("slow", ready, timeout=180)

    # A background whose columns are not the model's: the explainer never gets ready, and says why.
    def refused(resource: dict) -> bool:
        explainer = next((c for c in resource["status"].get("conditions", []) if c["type"] == "ExplainerReady"), {})
        return explainer.get("status") == "False" and "background" in explainer.get("message", "")

    explaining.wait("narrow", refused, timeout=120)
    assert "background" in explaining.wharf("describe", "isvc", "narrow").stdout

    # The wrong number of features: 400 naming it, on V1 and V2.
    for answer in (v1_explain(explaining, "forest", [[1.0, 2.0]]), v2_explain(explaining, "forest", np.ones((1, 2)))):
        assert answer.status_code == 400 and "6" in answer.json()["error"], answer.text

    # A burst of explanations: one runs, one waits for the thread, the rest are refused at once (503); the
    # predictor's own traffic is served meanwhile.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        burst = [pool.submit(v1_explain, explaining, "forest", ROWS[:1]) for _ in range(6)]
        predictions = [
            httpx.post(
                f"{explaining.gateway_url}/v1/models/forest:predict",
                json={"instances": ROWS.tolist()},
                headers=host("forest"),
                timeout=10,
            )
            for _ in range(10)
        ]
        codes = sorted(f.result(timeout=60).status_code for f in burst)
    assert all(p.status_code == 200 for p in predictions)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes

    # An explanation past its deadline is answered 504 at the deadline, not held; its thread is busy until it ends.
    late = v1_explain(explaining, "slow", ROWS[:1])
    assert late.status_code == 504 and late.elapsed.total_seconds() < 4, late.text
    busy = v1_explain(explaining, "slow", ROWS[:1])
    assert busy.status_code == 503 and "busy" in busy.json()["error"], busy.text
