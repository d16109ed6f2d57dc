"""The explanation methods end to end: a predictor `wharf serve` (scikit-learn forest, XGBoost, LightGBM, an image
classifier) and explainer `wharf serve wharf.explain.model:Explainer` processes pointed at it, as the control plane
starts them (WHARF_PREDICTOR_*, WHARF_EXPLAINER_CONFIG); answers over V1 `:explain`, V2 `/explain` and gRPC
`{name}-explainer` checked against each other, against shap's own values, and for additivity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm
import numpy as np
import pytest
import shap
import xgboost
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier

from tests.integration.conftest import RunningServer, launch, outputs_of
from wharf.client import SyncInferenceClient
from wharf.explain.background import load as load_background
from wharf.protocol.v2 import InferRequest, Tensor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

X, Y = load_iris(return_X_y=True)
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = X[[0, 60, 120]]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`forest` (50 trees), `xgb` and `lgb` (multiclass boosters, 20 rounds), `digits` (a forest on 8x8 images);
    and `background.csv`, every fifth iris row with a header, beside them."""
    root = tmp_path_factory.mktemp("explained")
    models = root / "models"
    for name in ("forest", "xgb", "lgb", "digits"):
        (models / name).mkdir(parents=True)
    joblib.dump(RandomForestClassifier(50, random_state=0).fit(X, Y), models / "forest" / "model.joblib")
    xgboost.train({"objective": "multi:softprob", "num_class": 3}, xgboost.DMatrix(X, Y), 20).save_model(
        models / "xgb" / "model.json"
    )
    lgb_params = {"objective": "multiclass", "num_class": 3, "verbose": -1}
    lightgbm.train(lgb_params, lightgbm.Dataset(X, Y), 20).save_model(models / "lgb" / "model.lgb")
    joblib.dump(
        RandomForestClassifier(30, random_state=0).fit(*load_digits(return_X_y=True)), models / "digits" / "m.joblib"
    )
    lines = [",".join(NAMES), *(",".join(map(str, row)) for row in X[::5])]
    (root / "background.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def predictor(repository: Path) -> Iterator[RunningServer]:
    server = launch(str(repository / "models"))
    yield server
    server.stop()


def _explainer_env(predictor: RunningServer, model: str, protocol: str, config: dict[str, Any]) -> dict[str, str]:
    """The environment the control plane gives an explainer replica of `model` (pointed here at the predictor)."""
    return {
        "WHARF_PREDICTOR_URL": predictor.url,
        "WHARF_PREDICTOR_GRPC_TARGET": f"127.0.0.1:{predictor.grpc_port}",
        "WHARF_PREDICTOR_PROTOCOL": protocol,
        "WHARF_PREDICTOR_MODEL": model,
        "WHARF_PREDICTOR_TIMEOUT_S": "30",
        "WHARF_EXPLAINER_CONFIG": json.dumps(config),
    }


@pytest.fixture(scope="module")
def explainers(repository: Path, predictor: RunningServer) -> Iterator[dict[str, RunningServer]]:
    """One explainer per method, started side by side: `tree` (the forest, with background, over V2), `xgb` (no
    background, over gRPC), `lgb` (background, over V1), `kernel` (the forest, over V2) and `art` (SquareAttack)."""
    models, background = repository / "models", str(repository / "background.csv")

    def shap_config(kind: str, model: str | None, **extra: Any) -> dict[str, Any]:
        source = {"model": {"storageUri": str(models / model)}} if model else {}
        return {"method": "shap", "type": kind, **source, **extra}

    wanted = {
        "tree": ("forest", "v2", shap_config("Tree", "forest", storageUri=background, sampleSize=20)),
        "xgb": ("xgb", "grpc-v2", shap_config("Auto", "xgb")),
        "lgb": ("lgb", "v1", shap_config("Tree", "lgb", storageUri=background)),
        "kernel": ("forest", "v2", shap_config("Kernel", None, storageUri=background, sampleSize=10, nSamples=100)),
        "art": (
            "digits",
            "v2",
            {"method": "art", "type": "SquareAttack", "config": {"nb_classes": "10", "max_iter": "50", "eps": "4"}},
        ),
    }

    def start(key: str) -> RunningServer:
        model, protocol, config = wanted[key]
        env = _explainer_env(predictor, model, protocol, config)
        return launch("wharf.explain.model:Explainer", "--name", model, env=env)

    with ThreadPoolExecutor(len(wanted)) as pool:
        futures = {key: pool.submit(start, key) for key in wanted}
        started = {key: future.result() for key, future in futures.items()}
    yield started
    for server in started.values():
        server.stop()


def _v1(server: RunningServer, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{model}:explain", json=body, timeout=TIMEOUT_S)


def _rows_v2(rows: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]}


def _v1_tensors(body: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contributions [rows, features, classes], base values and predictions [rows, classes] of a V1 answer."""
    rows = body["explanations"]
    return (
        np.array([r["contributions"] for r in rows]),
        np.array(rows[0]["base_values"]),
        np.array([r["prediction"] for r in rows]),
    )


def test_tree_shap_answers_alike_over_v1_v2_and_grpc(explainers: dict[str, RunningServer], repository: Path) -> None:
    server = explainers["tree"]
    v1 = _v1(server, "forest", {"instances": ROWS.tolist()})
    assert v1.status_code == 200, v1.text
    contributions, base, predictions = _v1_tensors(v1.json())
    assert v1.json()["method"] == "shap.tree" and v1.json()["output_space"] == "probability"

    v2 = outputs_of(httpx.post(f"{server.url}/v2/models/forest/explain", json=_rows_v2(ROWS), timeout=TIMEOUT_S))
    with SyncInferenceClient(grpc_target=f"127.0.0.1:{server.grpc_port}", protocol="grpc-v2") as client:
        answer = client.explain_v2("forest", InferRequest(inputs=[Tensor("x", ROWS)]))
    grpc = {t.name: t.data for t in answer.outputs}
    assert answer.parameters == {"explainer": "shap.tree"}
    for outputs in (v2, grpc):
        np.testing.assert_array_equal(outputs["contributions"], contributions)
        np.testing.assert_array_equal(outputs["base_values"], base)
        np.testing.assert_array_equal(outputs["predictions"], predictions)
    assert [bytes(n).decode() if not isinstance(n, str) else n for n in grpc["feature_names"]] == NAMES

    forest = joblib.load(repository / "models" / "forest" / "model.joblib")
    own = shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent")
    np.testing.assert_allclose(contributions, own.shap_values(ROWS), rtol=0, atol=1e-9)
    np.testing.assert_allclose(predictions, forest.predict_proba(ROWS), rtol=0, atol=1e-12)
    np.testing.assert_allclose(base + contributions.sum(axis=1), predictions, rtol=0, atol=1e-6)


@pytest.mark.parametrize("key", ["xgb", "lgb"])
def test_booster_contributions_add_up_to_their_margin(
    explainers: dict[str, RunningServer], repository: Path, key: str
) -> None:
    answer = _v1(explainers[key], key, {"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    contributions, base, predictions = _v1_tensors(answer.json())
    assert answer.json()["output_space"] == "margin"
    assert contributions.shape == (3, 4, 3)
    models = repository / "models"
    if key == "xgb":
        margin = xgboost.Booster(model_file=str(models / "xgb" / "model.json")).inplace_predict(
            ROWS, predict_type="margin"
        )
    else:
        margin = lightgbm.Booster(model_file=str(models / "lgb" / "model.lgb")).predict(ROWS, raw_score=True)
    np.testing.assert_allclose(predictions, margin, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(base + contributions.sum(axis=1), predictions, rtol=1e-6, atol=1e-6)


def test_kernel_shap_adds_up_and_calls_the_predictor_once_per_explanation(
    explainers: dict[str, RunningServer], predictor: RunningServer, repository: Path
) -> None:
    counted = 'wharf_requests_total{model="forest",protocol="v2-rest",status="200"} '

    def calls() -> float:
        lines = httpx.get(f"{predictor.url}/metrics", timeout=TIMEOUT_S).text.splitlines()
        return next((float(line.removeprefix(counted)) for line in lines if line.startswith(counted)), 0.0)

    before = calls()
    answer = _v1(explainers["kernel"], "forest", {"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    assert calls() == before + 1
    contributions, base, predictions = _v1_tensors(answer.json())
    assert answer.json()["method"] == "shap.kernel" and answer.json()["output_space"] == "probability"
    np.testing.assert_allclose(base + contributions.sum(axis=1), predictions, rtol=0, atol=1e-2)

    forest = joblib.load(repository / "models" / "forest" / "model.joblib")
    np.testing.assert_allclose(predictions, forest.predict_proba(ROWS))
    # the same signs and ranking as shap's own Kernel explainer, same background and seed
    background = load_background(str(repository / "background.csv"), 10, 0).rows  # as the explainer sampled it
    np.random.seed(0)
    own = shap.KernelExplainer(forest.predict_proba, background).shap_values(ROWS, nsamples=100, l1_reg=False)
    np.testing.assert_array_equal(np.sign(np.round(contributions, 9)), np.sign(np.round(own, 9)))
    np.testing.assert_array_equal(np.argsort(-np.abs(contributions), axis=1), np.argsort(-np.abs(own), axis=1))


def test_square_attack_answers_kserves_request_with_an_example_predicted_otherwise(
    explainers: dict[str, RunningServer], repository: Path
) -> None:
    images, labels = load_digits(return_X_y=True)
    body = {"instances": [images[0].reshape(1, 8, 8).tolist(), int(labels[0])]}
    answer = _v1(explainers["art"], "digits", body)
    assert answer.status_code == 200, answer.text
    found = answer.json()["explanations"]
    example = np.array(found["adversarial_example"])
    model = joblib.load(repository / "models" / "digits" / "m.joblib")
    assert found["prediction"] == model.predict(images[:1])[0]
    assert found["adversarial_prediction"] == model.predict(example.reshape(1, -1))[0] != found["prediction"]
    assert found["L2 error"] == pytest.approx(np.linalg.norm(example.reshape(-1) - images[0]))


@pytest.mark.parametrize("key", ["tree", "kernel"])
def test_the_wrong_number_of_features_is_a_400_naming_both(explainers: dict[str, RunningServer], key: str) -> None:
    answer = _v1(explainers[key], "forest", {"instances": [[1.0, 2.0, 3.0]]})
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "explainer 'forest' takes 4 features per row (sepal_length, sepal_width, petal_length, petal_width), got 3"
    )


def test_a_background_unlike_the_models_inputs_stops_the_replica_saying_so(
    repository: Path, predictor: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "bg.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    config = {
        "method": "shap",
        "type": "Tree",
        "storageUri": str(tmp_path / "bg.csv"),
        "model": {"storageUri": str(repository / "models" / "forest")},
    }
    with pytest.raises(RuntimeError, match="has 3 columns; the model takes 4 features"):
        launch(
            "wharf.explain.model:Explainer", "--name", "forest", env=_explainer_env(predictor, "forest", "v2", config)
        )
