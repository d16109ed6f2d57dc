"""Tree SHAP (shap's TreeExplainer): exact contributions for scikit-learn tree ensembles, XGBoost and LightGBM,
computed from the predictor's own artifact, without calling the predictor per request.

The artifact is loaded as the model server loads it (Wharf's storage, the format's runtime, `model-settings.json`).
An XGBoost or LightGBM model with background rows is explained interventionally (the base value is the mean output
over the background); any other model, or one without background, path-dependently (the base value and the
weights come from the trees' own training cover). Where shap 0.51's interventional mode does not add up, the
background only checks the predictor: scikit-learn's trees (shap routes a background value equal to a split
threshold to the other side than scikit-learn does, so a row's contributions can miss its output by a leaf) and a
LightGBM Booster with several outputs per iteration (multiclass, which shap reads as one output).

What the contributions add up to is the output space of shap's trees, and depends on the model: a forest's
probabilities (`predict_proba`: `probability`), a gradient-boosted model's raw score (`decision_function`, an
XGBoost or LightGBM booster's margin: `margin`), a regression's value (`predict`: `raw`). Loading finds it: the
first of the model's outputs, in that order, that base value + contributions reproduce within 1e-6 on the check
rows; a model none matches is refused. Loading also checks the predictor: on the check rows (the background, else
a few seeded random rows) the predictor's answers must equal what the loaded model answers, or the explainer
would explain another model than the one serving.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import shap

from wharf import storage
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.explain.attribution import OutputSpace, explanation
from wharf.explain.features import feature_rows
from wharf.explain.predictor import Predictor
from wharf.explain.settings import ModelSource
from wharf.model.repository import source_factory
from wharf.model.runtimes.tabular import DEFAULT_METHOD, TabularModel
from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import InferRequest
from wharf.storage.uri import redact

METHOD = "shap.tree"
#: The model formats whose artifacts hold trees shap reads.
TREE_FORMATS = ("sklearn", "xgboost", "lightgbm")
#: How closely base value + contributions must reproduce the model's output.
ADDITIVITY = 1e-6
#: How many random rows check a model loaded without background rows.
CHECK_ROWS = 8
#: The outputs of a scikit-learn model that tree SHAP may add up to, in the order they are tried.
_SKLEARN_SPACES: dict[str, OutputSpace] = {
    "predict_proba": "probability",
    "decision_function": "margin",
    "predict": "raw",
}

Output = Callable[[np.ndarray], np.ndarray]


class TreeUnsupported(ConfigurationError):
    """The model is not one tree SHAP explains (Auto explains it with Kernel SHAP instead)."""


def load_model(source: ModelSource, name: str) -> Any:
    """The predictor's model at `source`, loaded as the model server loads it."""
    model = source_factory(source.storage_uri, name, source.format, storage.resolve)()
    model.load()
    return model


class TreeShap:
    """Tree SHAP of a loaded tabular model (`model`), against `background` rows [rows, features] if given."""

    def __init__(
        self, explainer: str, model: Any, background: np.ndarray | None, feature_names: Sequence[str], seed: int
    ) -> None:
        if not isinstance(model, TabularModel) or model.estimator is None:
            raise TreeUnsupported(f"tree SHAP reads scikit-learn, XGBoost and LightGBM models, not {model.platform}")
        self.explainer = explainer
        self.model = model
        self.feature_names = list(feature_names)
        self._shap = _tree_explainer(model, background)
        self.check_rows = (
            background
            if background is not None
            else np.random.default_rng(seed).normal(size=(CHECK_ROWS, len(self.feature_names)))
        )
        self.output_space, self._output = self._additive_output(self.check_rows)

    def explain(self, request: InferRequest) -> Explanation:
        rows = feature_rows(request, self.feature_names, self.explainer)
        values = self._values(rows)
        return explanation(
            METHOD, values, self._shap.expected_value, self._output(rows), self.feature_names, self.output_space
        )

    def check_predictor(self, predictor: Predictor) -> None:
        """Refuse a predictor whose answers on the check rows differ from the loaded model's."""
        rows = self.check_rows
        answered = predictor.answer(rows)
        method = predictor.output or DEFAULT_METHOD
        if method not in self.model.methods:
            raise ModelLoadError(
                f"the predictor answers '{method}', which the model at model.storageUri does not offer "
                f"(it offers {list(self.model.methods)})"
            )
        local = np.asarray(self.model.methods[method].run(rows))
        if not _same(answered.data, local):
            raise ModelLoadError(
                f"the predictor's '{method}' differs from the model's at model.storageUri on {len(rows)} check "
                "rows: the explainer would explain another model than the one serving (is model.storageUri the "
                "predictor's artifact?)"
            )

    def _values(self, rows: np.ndarray) -> np.ndarray:
        columns = self.model.columns
        if columns:
            import pandas as pd

            return self._shap.shap_values(pd.DataFrame(rows, columns=columns), check_additivity=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an estimator fitted on named columns, explained on a matrix
            return self._shap.shap_values(rows, check_additivity=False)

    def _additive_output(self, rows: np.ndarray) -> tuple[OutputSpace, Output]:
        """The first of the model's outputs that the base value and the contributions add up to on `rows`."""
        values = np.asarray(self._values(rows), dtype=np.float64)
        totals = np.asarray(self._shap.expected_value, dtype=np.float64).reshape(-1) + values.sum(axis=1).reshape(
            len(rows), -1
        )
        tried = []
        for name, space, output in _outputs(self.model):
            found = np.asarray(output(rows), dtype=np.float64)
            tried.append(name)
            if found.size == totals.size and np.allclose(
                found.reshape(totals.shape), totals, rtol=ADDITIVITY, atol=ADDITIVITY
            ):
                return space, output
        raise TreeUnsupported(
            f"tree SHAP of this {type(self.model.estimator).__name__} adds up to none of its outputs "
            f"({', '.join(tried)}) within {ADDITIVITY}"
        )


def _tree_explainer(model: TabularModel, background: np.ndarray | None) -> shap.TreeExplainer:
    estimator = model.estimator
    if not _interventional(estimator):
        background = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if background is None:
                return shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
            return shap.TreeExplainer(estimator, data=background, feature_perturbation="interventional")
    except Exception as e:  # shap's InvalidModelError, or a model it fails to read
        raise TreeUnsupported(f"shap's TreeExplainer does not read this {type(estimator).__name__}: {e}") from None


def _outputs(model: TabularModel) -> list[tuple[str, OutputSpace, Output]]:
    """The model's outputs tree SHAP may add up to: a booster's margin, else scikit-learn's methods."""
    booster = _booster(model.estimator)
    kind = _framework(booster)
    if kind == "xgboost":
        return [
            (
                "margin",
                "margin",
                lambda rows: booster.inplace_predict(rows, predict_type="margin", validate_features=False),
            )
        ]
    if kind == "lightgbm":
        return [("raw score", "margin", lambda rows: booster.predict(rows, raw_score=True))]
    return [(name, space, model.methods[name].run) for name, space in _SKLEARN_SPACES.items() if name in model.methods]


def _booster(estimator: Any) -> Any:
    """The Booster inside XGBoost's and LightGBM's scikit-learn wrappers, else `estimator` itself."""
    if _framework(estimator) == "xgboost" and hasattr(estimator, "get_booster"):
        return estimator.get_booster()
    return getattr(estimator, "booster_", estimator) if _framework(estimator) == "lightgbm" else estimator


def _framework(estimator: Any) -> str:
    """The package an estimator's class comes from (`sklearn`, `xgboost`, `lightgbm`, ...)."""
    return type(estimator).__module__.partition(".")[0]


def _interventional(estimator: Any) -> bool:
    """Whether shap's interventional tree SHAP of `estimator` adds up (see the module's docstring)."""
    booster = _booster(estimator)
    kind = _framework(booster)
    return kind == "xgboost" or (kind == "lightgbm" and booster.num_model_per_iteration() == 1)


def _same(answered: np.ndarray, local: np.ndarray) -> bool:
    """Whether the predictor's answer equals the local model's (numbers within float32 rounding; labels exactly)."""
    if answered.size != local.size:
        return False
    answered, local = answered.reshape(-1), local.reshape(-1)
    if answered.dtype.kind in "biuf" and local.dtype.kind in "biuf":
        return bool(np.allclose(answered, local, rtol=1e-5, atol=1e-6))
    return _text(answered) == _text(local)


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def background_in_model_order(rows: np.ndarray, names: list[str] | None, model: Any, uri: str) -> np.ndarray:
    """Background `rows` (with their header `names`) as the model's feature matrix: as many columns as it takes
    and, where both are named, the same names (put in the model's order)."""
    columns = getattr(model, "columns", None)
    if names is not None and columns:
        if set(names) != set(columns):
            raise ConfigurationError(
                f"background data {redact(uri)} has the columns {names}; the model takes {columns}"
            )
        rows = rows[:, [names.index(c) for c in columns]]
    expected = getattr(model, "n_features", None)
    if expected is not None and rows.shape[1] != expected:
        raise ConfigurationError(
            f"background data {redact(uri)} has {rows.shape[1]} columns; the model takes {expected} features"
        )
    return rows
