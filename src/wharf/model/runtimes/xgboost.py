"""XGBoost runtime: Booster files (JSON or UBJSON), as `Booster.save_model` or the sklearn wrappers write them.

A plain Booster offers `predict`, what `Booster.predict` returns (probabilities for a classification objective).
A model saved by a sklearn wrapper (its learner attribute `scikit_learn` names the estimator type) is served
through that wrapper, so that predictions are the wrapper's own (e.g. up to the best iteration of early
stopping): `predict`, and for a classifier class labels from `predict` and probabilities from `predict_proba`.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import xgboost

from wharf.errors import ModelLoadError
from wharf.model.runtimes.tabular import Method, TabularModel


class XGBoostModel(TabularModel):
    platform = "xgboost"
    #: XGBoost predicts from 32-bit floats whatever it is given, so FP32 input loses nothing.
    input_datatype = "FP32"

    def load(self) -> None:
        try:
            booster = xgboost.Booster(model_file=str(self.artifact))
            wrapper = _wrapper(booster)
            if wrapper is not None:
                wrapper.load_model(str(self.artifact))
        except Exception as e:
            raise ModelLoadError(f"cannot load XGBoost model from {self.artifact}: {e}") from e
        self.n_features = booster.num_features()
        self.methods = _methods(booster, wrapper)


def _methods(booster: xgboost.Booster, wrapper: xgboost.XGBModel | None) -> dict[str, Method]:
    """`predict` from the Booster or its wrapper, and `predict_proba` too from a classifier's wrapper."""
    if wrapper is None:
        # inplace_predict skips building a DMatrix and gives what Booster.predict(DMatrix(x)) gives
        return {"predict": Method(partial(booster.inplace_predict, validate_features=False), "FP32", _shape(booster))}
    # requests carry no feature names, so the wrapper must not check them
    predict = partial(wrapper.predict, validate_features=False)
    if not isinstance(wrapper, xgboost.XGBClassifier):
        return {"predict": Method(predict, "FP32", _shape(booster))}
    return {
        "predict": Method(predict, "INT64", [-1]),
        "predict_proba": Method(
            partial(wrapper.predict_proba, validate_features=False), "FP32", [-1, int(wrapper.n_classes_)]
        ),
    }


def _wrapper(booster: xgboost.Booster) -> xgboost.XGBModel | None:
    """An empty sklearn wrapper of the type that saved `booster`, or None when a plain Booster saved it."""
    attribute = booster.attr("scikit_learn")
    kind = json.loads(attribute).get("_estimator_type") if attribute else None
    wrappers = {"classifier": xgboost.XGBClassifier, "regressor": xgboost.XGBRegressor, "ranker": xgboost.XGBRanker}
    return wrappers[kind]() if kind in wrappers else None


def _shape(booster: xgboost.Booster) -> list[int]:
    """The shape of a Booster's predictions: one column per class (multi:softprob) or per target, if several."""
    learner = json.loads(booster.save_config())["learner"]
    params = learner["learner_model_param"]
    if learner["objective"]["name"] == "multi:softprob":
        return [-1, int(params["num_class"])]
    targets = int(params.get("num_target", 1))
    return [-1, targets] if targets > 1 else [-1]


def create(name: str, artifact: Path, version: str | None = None) -> XGBoostModel:
    return XGBoostModel(name, artifact, version)
