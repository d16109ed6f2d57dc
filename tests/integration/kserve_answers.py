"""What KServe's sklearn, xgb and lgb servers answer rows with, printed as one line of JSON.

Run as `python kserve_answers.py REPOSITORY ROWS_JSON MODEL...`, in an interpreter of its own: kserve's generated
protobuf modules and tritonclient's both register `inference.*` in protobuf's default pool and cannot share the
tests' process. Each model's predict runs with KServe's own helpers (`get_predict_input`, `get_predict_response`)
on the model loaded as its server loads it (lgbserver also names the Booster's columns), for a V1 body of the rows
and for a V2 request of them as one FP64 input. Printed: {model: {"v1": predictions, "v2": {"datatype", "shape",
"data"}}}, the V2 output's data flattened."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import xgboost
from kserve import InferInput, InferRequest
from kserve.utils.utils import get_predict_input, get_predict_response


def answer(artifact: Path, model: str, payload: dict | InferRequest) -> Any:
    """KServe's server's answer to `payload` for `model`, whose artifact is `artifact`."""
    if model == "sklearn":
        return get_predict_response(payload, joblib.load(artifact).predict(get_predict_input(payload)), model)
    if model.startswith("lgb"):
        booster = lightgbm.Booster(model_file=artifact)
        return get_predict_response(payload, booster.predict(get_predict_input(payload, booster.feature_name())), model)
    booster = xgboost.Booster(model_file=bytearray(artifact.read_bytes()))
    return get_predict_response(payload, booster.predict(xgboost.DMatrix(get_predict_input(payload))), model)


def answers(repository: Path, rows: np.ndarray, models: list[str]) -> dict[str, Any]:
    """Each model's V1 predictions and V2 output for `rows`."""
    found = {}
    for model in models:
        artifact = next((repository / model).iterdir())
        v2 = InferInput("input-0", list(rows.shape), "FP64")
        v2.set_data_from_numpy(rows, binary_data=False)
        [output] = answer(artifact, model, InferRequest(model, [v2])).outputs
        found[model] = {
            "v1": answer(artifact, model, {"instances": rows.tolist()})["predictions"],
            "v2": {"datatype": output.datatype, "shape": output.shape, "data": output.as_numpy().reshape(-1).tolist()},
        }
    return found


if __name__ == "__main__":
    repository, rows, *models = sys.argv[1:]
    print(json.dumps(answers(Path(repository), np.array(json.loads(rows)), models)))
