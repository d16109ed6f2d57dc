"""scikit-learn pipelines fitted on DataFrames, served by one real `wharf serve` as KServe's sklearn server and
MLServer serve them: named columns over V2 (`content_type: pd`) and V1 (row objects, columnar `inputs`), plain rows
in the fitted order, the columns in the metadata, and missing or unknown columns refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.integration.conftest import served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, request, tensor

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = load_iris(as_frame=True).frame.set_axis([*COLUMNS, "species"], axis=1)
SITES = np.array(["north", "south", "east"])[np.arange(len(IRIS)) % 3]
ROWS = IRIS.iloc[[0, 60, 120, 149]][COLUMNS]


def _pipeline(columns: list[str], encoded: list[str]) -> Pipeline:
    scale = [("scale", StandardScaler(), columns)]
    encode = [("encode", OneHotEncoder(handle_unknown="ignore"), encoded)] if encoded else []
    return Pipeline([("columns", ColumnTransformer(scale + encode)), ("classify", LogisticRegression(max_iter=500))])


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris/model.joblib: four numeric columns chosen by name; mixed/model.joblib: the same and a text column."""
    root = tmp_path_factory.mktemp("dataframes")
    (root / "iris").mkdir()
    (root / "mixed").mkdir()
    joblib.dump(_pipeline(COLUMNS, []).fit(IRIS[COLUMNS], IRIS.species), root / "iris/model.joblib")
    mixed = IRIS[COLUMNS].assign(site=SITES)
    joblib.dump(_pipeline(COLUMNS, ["site"]).fit(mixed, IRIS.species), root / "mixed/model.joblib")
    return root


@pytest.fixture(scope="module")
def client(repository: Path) -> Iterator[httpx.Client]:
    with served_client(str(repository), timeout=10) as c:
        yield c


def _expected(repository: Path, model: str, frame: pd.DataFrame) -> list[Any]:
    return joblib.load(repository / model / "model.joblib").predict(frame).tolist()


def _columns(frame: pd.DataFrame, **datatypes: str) -> list[dict[str, Any]]:
    """One V2 tensor per column of `frame` (text as BYTES), with `datatypes` where given."""
    return [tensor(name, frame[name].tolist(), datatypes.get(name)) for name in frame.columns]


def test_metadata_lists_the_fitted_columns(client: httpx.Client) -> None:
    assert client.get("/v2/models/iris").json()["inputs"] == [
        {"name": name, "datatype": "FP64", "shape": [-1]} for name in COLUMNS
    ]
    mixed = client.get("/v2/models/mixed").json()["inputs"]
    assert [(i["name"], i["datatype"]) for i in mixed] == [*((c, "FP64") for c in COLUMNS), ("site", "BYTES")]


def test_v2_pd_request_of_named_columns(client: httpx.Client, repository: Path) -> None:
    expected = _expected(repository, "iris", ROWS)
    body = request(*_columns(ROWS), parameters={"content_type": "pd"})
    assert infer(client, "iris", body)["predict"].tolist() == expected
    shuffled = request(*reversed(_columns(ROWS, sepal_length="FP32", petal_width="FP32")))  # any order, any type
    assert infer(client, "iris", shuffled)["predict"].tolist() == expected
    per_input = [{**t, "parameters": {"content_type": "pd"}} for t in _columns(ROWS)]
    assert infer(client, "iris", request(*per_input))["predict"].tolist() == expected


def test_a_text_column_arrives_as_text(client: httpx.Client, repository: Path) -> None:
    frame = ROWS.assign(site=["south", "north", "east", "north"])
    expected = _expected(repository, "mixed", frame)
    body = request(*_columns(frame), parameters={"content_type": "pd"})
    assert infer(client, "mixed", body)["predict"].tolist() == expected
    v1 = client.post("/v1/models/mixed:predict", json={"instances": frame.to_dict(orient="records")})
    assert v1.json() == {"predictions": expected}, v1.text


def test_v1_row_objects_columns_and_plain_rows(client: httpx.Client, repository: Path) -> None:
    expected = _expected(repository, "iris", ROWS)
    for body in (
        {"instances": ROWS.to_dict(orient="records")},
        {"inputs": ROWS.to_dict(orient="list")},
        {"instances": ROWS.to_numpy().tolist()},  # rows in the fitted order
    ):
        answer = client.post("/v1/models/iris:predict", json=body)
        assert answer.json() == {"predictions": expected}, (body, answer.text)


def test_v2_feature_matrix_in_the_fitted_order(client: httpx.Client, repository: Path) -> None:
    body = request(tensor("input-0", ROWS.to_numpy()))
    assert infer(client, "iris", body)["predict"].tolist() == _expected(repository, "iris", ROWS)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (ROWS[COLUMNS[:3]], "missing column(s) ['petal_width']; it takes the columns"),
        (ROWS.assign(colour=1.0), "unknown column(s) ['colour']"),
        (ROWS.rename(columns={"petal_width": "pw"}), "missing column(s) ['petal_width']; unknown column(s) ['pw']"),
    ],
    ids=["missing", "unknown", "misnamed"],
)
def test_missing_or_unknown_columns_are_refused_by_name(
    client: httpx.Client, frame: pd.DataFrame, message: str
) -> None:
    assert_bad_input(client, "iris", request(*_columns(frame), parameters={"content_type": "pd"}), message)
    v1 = client.post("/v1/models/iris:predict", json={"instances": frame.to_dict(orient="records")})
    assert v1.status_code == 400 and message in v1.json()["error"], v1.text
    assert_serves(client, "iris", request(*_columns(ROWS)))
