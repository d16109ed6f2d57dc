"""The per-batch function: ids, kept columns, chosen outputs, mini-batches, named columns; retries with backoff."""

from __future__ import annotations

import asyncio
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from wharf import Model
from wharf.batch.predictor import OTHER_BATCH_ROWS, load_predictor, with_retries
from wharf.errors import InvalidInput, ServerBusy

FEATURES, LABELS = load_iris(return_X_y=True)
NAMES = ["sl", "sw", "pl", "pw"]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(FEATURES, LABELS), path)
    return path


def rows(count: int = 150) -> pa.Table:
    columns = {name: FEATURES[:count, i] for i, name in enumerate(NAMES)}
    return pa.table({"id": np.arange(count) + 1000, "label": LABELS[:count].astype(str), **columns})


def test_predictions_keep_the_id_and_the_kept_columns_whatever_the_batch_size(iris: Path) -> None:
    model = LogisticRegression(max_iter=1000).fit(FEATURES, LABELS)
    answers = []
    for batch_size in (1000, 7):
        predictor = load_predictor(str(iris), batch_size=batch_size)
        answers.append(predictor.predict_table(rows(), ["predict_proba", "predict"], ["label"], "id"))
        predictor.close()
    assert answers[0].equals(answers[1])
    out = answers[0]
    assert out.column_names == ["id", "label", "predict_proba_0", "predict_proba_1", "predict_proba_2", "predict"]
    assert out.column("id").to_pylist() == list(range(1000, 1150))
    assert out.column("label").to_pylist() == LABELS.astype(str).tolist()
    np.testing.assert_allclose(
        np.column_stack([out.column(f"predict_proba_{j}").to_numpy() for j in range(3)]), model.predict_proba(FEATURES)
    )
    assert out.column("predict").to_pylist() == model.predict(FEATURES).tolist()


class Doubler(Model):
    """A custom model: not of a tabular runtime."""

    def predict(self, payload: object, headers: object = None) -> object:
        return payload


def test_the_batch_size_is_the_model_s_unless_given(iris: Path) -> None:
    assert load_predictor(str(iris)).batch_size is None  # scikit-learn: each chunk in one call
    assert load_predictor(str(iris), batch_size=7).batch_size == 7
    assert load_predictor(f"{__name__}:Doubler").batch_size == OTHER_BATCH_ROWS


def test_the_default_output_and_a_missing_output_or_column(iris: Path) -> None:
    predictor = load_predictor(str(iris))
    assert predictor.predict_table(rows(3), None, ["label"], "id").column_names == ["id", "label", "predict"]
    with pytest.raises(InvalidInput, match=r"no output\(s\) \['nope'\]"):
        predictor.predict_table(rows(3), ["nope"], ["label"], "id")
    with pytest.raises(InvalidInput, match="--keep"):
        predictor.predict_table(rows(3), None, ["label", "gone"], "id")


def test_a_model_fitted_on_named_columns_takes_them_by_name(tmp_path: Path) -> None:
    frame = pd.DataFrame(FEATURES, columns=NAMES)
    joblib.dump(LogisticRegression(max_iter=1000).fit(frame, LABELS), tmp_path / "named.joblib")
    predictor = load_predictor(str(tmp_path / "named.joblib"))
    shuffled = rows(5).select(["pw", "id", "sl", "pl", "sw", "label"])  # other columns and order: by name
    assert predictor.predict_table(shuffled, None, [], "id").column("predict").to_pylist() == LABELS[:5].tolist()
    with pytest.raises(InvalidInput, match=r"no column\(s\) \['pw'\]"):
        predictor.predict_table(rows(5).drop_columns(["pw"]), None, [], "id")


def test_refused_calls_are_retried_with_backoff_then_given_up() -> None:
    calls: list[int] = []

    async def flaky(failures: int) -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ServerBusy("scaling up")
        return "ok"

    assert asyncio.run(with_retries(lambda: flaky(2), retries=3, first_wait_s=0.001)) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(ServerBusy):
        asyncio.run(with_retries(lambda: flaky(9), retries=2, first_wait_s=0.001))
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(InvalidInput):  # a client error is not retried

        async def refused() -> None:
            calls.append(1)
            raise InvalidInput("bad")

        asyncio.run(with_retries(refused, retries=3, first_wait_s=0.001))
    assert len(calls) == 1


def test_a_chunk_whose_rows_were_all_bad_gives_an_empty_table(iris: Path) -> None:
    empty = load_predictor(str(iris)).predict_table(rows(0), None, ["label"], "id")
    assert len(empty) == 0 and empty.column_names == ["id", "label"]
