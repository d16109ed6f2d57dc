"""XGBoost runtime: Booster files (JSON or UBJSON, under any name: KServe's `model.bst`, `model.json`, `model.ubj`),
as `Booster.save_model` or the sklearn wrappers write them.

`predict` answers what `Booster.predict` returns, as KServe's XGBoost server does: probabilities for a
classification objective (one column per class for `multi:softprob`, the positive class's for `binary:logistic`),
values for a regression. A model saved by a sklearn classifier (its learner attribute `scikit_learn` names the
estimator type) also offers that wrapper's own answers: `predict_proba` (one column per class) and
`predict_class` (the class index, `XGBClassifier.predict`), both up to the best iteration of early stopping where
there was one, as the wrapper predicts. The file is checked by its first bytes before XGBoost reads it.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import xgboost

from wharf.errors import ModelLoadError
from wharf.model.runtimes.signatures import Content, content_of, first_line
from wharf.model.runtimes.tabular import Method, TabularModel


class XGBoostModel(TabularModel):
    platform = "xgboost"
    #: XGBoost predicts from 32-bit floats whatever it is given, so FP32 input loses nothing.
    input_datatype = "FP32"

    def load(self) -> None:
        _check_content(self.artifact)
        try:
            # from its bytes, whose content XGBoost reads without guessing from the file's name (as KServe loads it)
            saved = bytearray(self.artifact.read_bytes())
            booster = xgboost.Booster(model_file=saved)
            wrapper = _wrapper(booster)
            if wrapper is not None:
                wrapper.load_model(saved)
        except Exception as e:
            raise ModelLoadError(f"cannot load XGBoost model from {self.artifact}: {first_line(e)}") from None
        self.estimator = booster
        self.n_features = booster.num_features()
        self.columns = list(booster.feature_names) if booster.feature_names else None
        self.methods = _methods(booster, wrapper)


def _check_content(artifact: Path) -> None:
    """Refuse a file that is not an XGBoost model XGBoost can read, naming what it is instead."""
    content = content_of(artifact)
    if content in (Content.XGBOOST_JSON, Content.XGBOOST_UBJSON):
        return
    if content is Content.XGBOOST_BINARY:
        reason = (
            "it is in XGBoost's old binary format, which XGBoost 3.1 and later cannot read; "
            "load it with XGBoost 3.0 and save it again as model.json or model.ubj"
        )
    elif content is Content.LIGHTGBM_TEXT:
        reason = "it is a LightGBM text model; serve it with --runtime lightgbm (modelFormat lightgbm)"
    else:
        reason = "expected an XGBoost model saved as JSON or UBJSON (Booster.save_model)"
    raise ModelLoadError(f"cannot load XGBoost model from {artifact}: {reason}")


def _methods(booster: xgboost.Booster, wrapper: xgboost.XGBModel | None) -> dict[str, Method]:
    """`predict` from the Booster, and `predict_proba` and `predict_class` too from a classifier's wrapper."""
    # inplace_predict skips building a DMatrix and gives what Booster.predict(DMatrix(x)) gives
    methods = {"predict": Method(partial(booster.inplace_predict, validate_features=False), "FP32", _shape(booster))}
    if isinstance(wrapper, xgboost.XGBClassifier):
        # requests carry no feature names, so the wrapper must not check them
        methods["predict_proba"] = Method(
            partial(wrapper.predict_proba, validate_features=False), "FP32", [-1, int(wrapper.n_classes_)]
        )
        methods["predict_class"] = Method(partial(wrapper.predict, validate_features=False), "INT64", [-1])
    return methods


def _wrapper(booster: xgboost.Booster) -> xgboost.XGBModel | None:
    """An empty sklearn wrapper of the classifier type that saved `booster`, or None (a plain Booster, a regressor)."""
    attribute = booster.attr("scikit_learn")
    kind = json.loads(attribute).get("_estimator_type") if attribute else None
    return xgboost.XGBClassifier() if kind == "classifier" else None


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
