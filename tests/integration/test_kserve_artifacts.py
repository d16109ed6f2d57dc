"""KServe's artifact names and default answers, through real `wharf serve` processes: XGBoost's `model.bst`,
`model.json`, `model.ubj` and LightGBM's `model.bst`, with and without `--runtime`, told apart by content; a file of
the wrong kind refused in one line naming it; `predict` answering what the framework's own `Booster.predict`
answers (as KServe's xgbserver and lgbserver do), the class index as `predict_class`; an empty model directory
listed as not ready with its reason while the others serve."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import served_client
from tests.integration.runtime_checks import infer, rows_request
from tests.processes import ROOT

FEATURES, LABELS = load_iris(return_X_y=True)
ROWS = FEATURES[[0, 60, 120, 149]]
REFUSAL_TIMEOUT_S = 90
KSERVE_ANSWERS = Path(__file__).with_name("kserve_answers.py")  # run in an interpreter of its own: see there
KSERVE_ANSWERS_TIMEOUT_S = 90
KSERVE_SERVED = ["sklearn", "xgb-json", "xgb-ubj", "lgb-bst"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four models under KServe's file names, an sklearn model, and an empty model directory."""
    root = tmp_path_factory.mktemp("kserve-artifacts")
    for name in ("xgb-bst", "xgb-json", "xgb-ubj", "lgb-bst", "sklearn", "empty"):
        (root / name).mkdir()
    joblib.dump(LogisticRegression(max_iter=500).fit(FEATURES, LABELS), root / "sklearn/model.joblib")
    classifier = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(FEATURES, LABELS)
    classifier.save_model(root / "xgb-ubj/model.ubj")
    (root / "xgb-bst/model.bst").write_bytes((root / "xgb-ubj/model.ubj").read_bytes())  # UBJSON named .bst
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    xgboost.train(params, xgboost.DMatrix(FEATURES, LABELS), 10).save_model(root / "xgb-json/model.json")
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbose": -1}
    lightgbm.train(params, lightgbm.Dataset(FEATURES, LABELS), 10).save_model(root / "lgb-bst/model.bst")
    return root


@pytest.fixture(scope="module")
def client(repository: Path) -> Iterator[httpx.Client]:
    with served_client(str(repository), timeout=10) as c:
        yield c


def _booster_predict(repository: Path, model: str) -> np.ndarray:
    """What KServe's server answers for the model: its framework's own `Booster.predict`."""
    artifact = next((repository / model).iterdir())
    if model.startswith("lgb"):
        return lightgbm.Booster(model_file=artifact).predict(ROWS)
    return xgboost.Booster(model_file=bytearray(artifact.read_bytes())).predict(xgboost.DMatrix(ROWS))


@pytest.mark.parametrize("model", ["xgb-bst", "xgb-json", "xgb-ubj", "lgb-bst"])
def test_kserve_file_names_are_recognised_without_runtime(client: httpx.Client, model: str) -> None:
    platform = "lightgbm" if model.startswith("lgb") else "xgboost"
    assert client.get(f"/v2/models/{model}").json()["platform"] == platform


@pytest.mark.parametrize("model", ["xgb-bst", "xgb-json", "lgb-bst"])
def test_predict_answers_booster_predict_by_default(client: httpx.Client, repository: Path, model: str) -> None:
    expected = _booster_predict(repository, model)
    assert expected.shape == (len(ROWS), 3)  # one probability per class, not a class index
    v2 = infer(client, model, rows_request(ROWS))
    assert list(v2) == ["predict"] and np.allclose(v2["predict"], expected, atol=1e-6)
    v1 = client.post(f"/v1/models/{model}:predict", json={"instances": ROWS.tolist()})
    assert np.allclose(v1.json()["predictions"], expected, atol=1e-6), v1.text


@pytest.fixture(scope="module")
def kserve_answers(repository: Path) -> dict:
    """What KServe's sklearn, xgb or lgb server answers ROWS with over V1 and V2, for each of KSERVE_SERVED."""
    command = [sys.executable, str(KSERVE_ANSWERS), str(repository), json.dumps(ROWS.tolist()), *KSERVE_SERVED]
    run = subprocess.run(command, capture_output=True, text=True, timeout=KSERVE_ANSWERS_TIMEOUT_S, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("model", KSERVE_SERVED)
def test_v1_and_v2_answers_are_kserves(client: httpx.Client, kserve_answers: dict, model: str) -> None:
    """The same numbers, datatypes and shapes as KServe's server; V2's output is named for the method, not output-0."""
    expected_v1, expected = kserve_answers[model]["v1"], kserve_answers[model]["v2"]
    predictions = client.post(f"/v1/models/{model}:predict", json={"instances": ROWS.tolist()}).json()["predictions"]
    assert np.array(predictions).dtype == np.array(expected_v1).dtype and np.allclose(predictions, expected_v1)
    [found] = client.post(f"/v2/models/{model}/infer", json=rows_request(ROWS)).json()["outputs"]
    assert (found["name"], found["datatype"], found["shape"]) == ("predict", expected["datatype"], expected["shape"])
    assert found["data"] == pytest.approx(expected["data"])


@pytest.mark.parametrize("model", ["xgb-ubj", "lgb-bst"])
def test_the_class_index_is_predict_class(client: httpx.Client, repository: Path, model: str) -> None:
    expected = _booster_predict(repository, model).argmax(axis=1)
    classes = infer(client, model, rows_request(ROWS, outputs=[{"name": "predict_class"}]))["predict_class"]
    assert classes.tolist() == expected.tolist()
    body = {"instances": ROWS.tolist(), "parameters": {"method": "predict_class"}}
    v1 = client.post(f"/v1/models/{model}:predict", json=body)
    assert v1.json() == {"predictions": expected.tolist()}, v1.text


def test_an_empty_model_directory_is_not_ready_and_says_why(client: httpx.Client, repository: Path) -> None:
    rows = {row["name"]: row for row in client.post("/v2/repository/index").json()}
    assert rows["empty"]["state"] == "UNAVAILABLE"
    assert rows["empty"]["reason"] == f"its directory {repository / 'empty'} is empty: nothing to load yet"
    assert client.get("/v2/models/empty/ready").status_code == 503
    assert rows["lgb-bst"]["state"] == "READY"


@pytest.mark.parametrize(
    ("model", "runtime"), [("xgb-json", "xgboost"), ("lgb-bst", "lightgbm"), ("xgb-bst", "xgboost")]
)
def test_kserve_file_names_with_runtime(repository: Path, model: str, runtime: str) -> None:
    with served_client(str(repository / model), "--runtime", runtime, "--name", "m", timeout=10) as client:
        assert client.get("/v2/models/m").json()["platform"] == runtime
        assert np.allclose(infer(client, "m", rows_request(ROWS))["predict"], _booster_predict(repository, model))


def _refusal(*args: str) -> str:
    """`wharf serve ARGS` must exit 2 at start; its stderr."""
    command = [sys.executable, "-m", "wharf.cli", "serve", *args, "--http-port", "0", "--grpc-port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=REFUSAL_TIMEOUT_S, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("content", "runtime", "message"),
    [
        ("lightgbm", "xgboost", "cannot load XGBoost model from {}: it is a LightGBM text model; serve it with"),
        ("xgboost", "lightgbm", "cannot load LightGBM model from {}: expected a LightGBM text model"),
        (b"binf\0\0\0?" + bytes(64), None, "{}: it is in XGBoost's old binary format, which XGBoost 3.1"),
        (b"\x00\x01garbage" * 8, None, "{}: its name fits xgboost and lightgbm models, but its content is none"),
    ],
    ids=["lightgbm-as-xgboost", "xgboost-as-lightgbm", "xgboost-old-binary", "unknown"],
)
def test_a_file_of_another_kind_is_refused_in_one_line(
    repository: Path, tmp_path: Path, content: str | bytes, runtime: str | None, message: str
) -> None:
    artifact = tmp_path / "model.bst"
    if isinstance(content, str):
        content = (repository / {"lightgbm": "lgb-bst", "xgboost": "xgb-bst"}[content] / "model.bst").read_bytes()
    artifact.write_bytes(content)
    stderr = _refusal(str(tmp_path), *(("--runtime", runtime) if runtime else ()))
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("wharf serve: ") and message.format(artifact) in last, stderr
    assert "Stack trace" not in stderr and "[bt]" not in stderr and "Traceback" not in stderr, stderr
