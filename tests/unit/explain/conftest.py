"""Small models and data for the explanation methods, and one real model server (`wharf serve` of a repository of
them) for the methods that call a predictor over the protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import RunningServer, launch
from wharf.protocol.v2 import InferRequest, Tensor
from wharf.transformer import PredictorSettings

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="session")
def iris() -> Data:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def wide() -> Data:
    """8 features: more than Kernel SHAP enumerates within a budget of 100, so it samples."""
    return make_classification(200, 8, n_informative=5, random_state=0)


@pytest.fixture(scope="session")
def digits() -> Data:
    """8x8 images of digits (values 0..16), 10 classes."""
    return load_digits(return_X_y=True)


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, iris: Data, wide: Data, digits: Data) -> Path:
    """A model repository: `iris` (forest classifier), `iris-value` (forest regressor), `wide` (logistic
    regression, 8 features), `digits` (a forest on images) and `names` (a forest answering text)."""
    root = tmp_path_factory.mktemp("predictors")
    x, y = iris
    fitted = {
        "iris": RandomForestClassifier(20, random_state=0).fit(x, y),
        "iris-value": RandomForestRegressor(20, random_state=0).fit(x, x[:, 0] + y),
        "wide": LogisticRegression(max_iter=2000).fit(*wide),
        "digits": RandomForestClassifier(30, random_state=0).fit(*digits),
        "names": RandomForestClassifier(20, random_state=0).fit(x, np.array(["setosa", "versicolor", "virginica"])[y]),
    }
    for name, estimator in fitted.items():
        (root / name).mkdir()
        joblib.dump(estimator, root / name / "model.joblib")
    return root


@pytest.fixture(scope="session")
def predictors(repository: Path) -> Iterator[RunningServer]:
    """One `wharf serve` of the repository, for the whole session."""
    server = launch(str(repository))
    yield server
    server.stop()


def predictor_settings(server: RunningServer, model: str, protocol: str = "v2") -> PredictorSettings:
    """Where `model` of `server` is, as WHARF_PREDICTOR_* would say."""
    return PredictorSettings(
        url=server.url,
        grpc_target=f"127.0.0.1:{server.grpc_port}",
        protocol=protocol,
        model=model,
        timeout_s=30,
    )


def rows_request(rows: np.ndarray) -> InferRequest:
    return InferRequest(inputs=[Tensor("input-0", np.asarray(rows, dtype=np.float64))])


def requests_counted(server: RunningServer, model: str, protocol: str = "v2-rest") -> float:
    """How many requests of `model` over `protocol` the server has answered (its /metrics)."""
    sample = f'wharf_requests_total{{model="{model}",protocol="{protocol}",status="200"}} '
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(sample):
            return float(line.removeprefix(sample))
    return 0.0
