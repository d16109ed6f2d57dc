"""scikit-learn estimators' methods computed directly, without scikit-learn's per-call input checks.

scikit-learn checks its input on every call (on 1.9 about 100 µs, more for a pipeline or a boosted ensemble, which
check it once per step); Wharf has already checked the matrix (2-D, numeric, the model's number of features). For
the estimators below `direct` computes what the estimator's own method computes once its input is checked, with
the same NumPy and Cython routines in the same order, so that the results are the same bits:
- linear models: `predict`, `decision_function` (the estimator's coefficients and intercept);
- single trees: `predict`, `predict_proba` (the float32 matrix through `tree_.apply`, then a per-leaf table made at
  load: the leaf's class, probabilities or value);
- forests: `predict`, `predict_proba` (the trees' per-leaf tables summed in tree order, as with `n_jobs=1`; a
  forest with other `n_jobs` adds its trees in the order its threads finish, so it is probed with `n_jobs=1`);
- gradient boosting: `predict`, `predict_proba`, `decision_function` (scikit-learn's Cython `predict_stages` from
  the init estimator's prediction, made once at load where that estimator answers a constant, then the loss link);
- histogram gradient boosting without categorical features: the same three (each tree's predictor in stage order,
  the categories' bitsets made once at load, then the loss link);
- scalers (Standard, MinMax, MaxAbs, Robust): `transform` (the same in-place arithmetic on a float copy);
- pipelines whose every step has a direct computation: the composition, each step after the first guarded again.

A computation is offered only where the estimator's class uses scikit-learn's own implementation of the method,
and only once a probe at load time has shown its results (dtype, shape, values) to be identical to the checked
method's (for an estimator fitted on named columns, the checked method given a DataFrame of them). At each call it
is used only for an ndarray (any memory order) of the estimator's width, with rows, a dtype in `_DIRECT_DTYPES` and
no NaN or infinity; any other input goes to scikit-learn, which rejects it with its own message or computes it as
usual. That guard costs about 1 µs a call (one `isfinite` over the matrix) and a pipeline pays it once a step.
What it saves, one row in process (bench/model_loop.py with and without `--runtime`, 2 loaded CPUs): a decision
tree 195 -> 11 µs a request, gradient boosting of 100 stages on 3 classes 1,005 -> 115, a scaler + logistic
pipeline 515 -> 20, a logistic regression 220 -> 13.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

# The feature matrices a direct computation takes; any other goes to scikit-learn.
_DIRECT_DTYPES = frozenset(np.dtype(t) for t in ("float64", "float32", "int64", "int32"))

Compute = Callable[[np.ndarray], np.ndarray]


def direct(estimator: Any, name: str, checked: Compute) -> Compute | None:
    """`estimator.name` (`checked`) computed directly where `checked` would give the same result, else None."""
    n_features = getattr(estimator, "n_features_in_", None)
    compute = _compute(estimator, name) if isinstance(n_features, int) else None
    if compute is None:
        return None
    run = _guarded(compute, checked, n_features)
    with _serial(estimator):
        return run if _same(run, checked, n_features) else None


def _guarded(compute: Compute, checked: Compute, n_features: int) -> Compute:
    """`compute` for the input it was made for, `checked` for any other."""

    def run(features: np.ndarray) -> np.ndarray:
        plain = (
            type(features) is np.ndarray
            and features.ndim == 2
            and features.shape[0] > 0
            and features.shape[1] == n_features
            and features.dtype in _DIRECT_DTYPES
            and (features.dtype.kind != "f" or bool(np.isfinite(features).all()))
        )
        return compute(features) if plain else checked(features)

    return run


def _compute(estimator: Any, name: str) -> Compute | None:
    """What `estimator.name` computes once its input is checked, where this module knows it."""
    families = {klass.__module__ for klass in type(estimator).__mro__}
    for package, known in _KNOWN:
        if not any(family.startswith(package) for family in families):
            continue  # not of that package: its modules stay unimported (a model server imports what it needs)
        try:
            compute = known(estimator, name)
        except Exception:  # an optimisation only: a scikit-learn that moved what this module uses, an odd class
            return None
        if compute is not None:
            return compute
    return None


def _owns(estimator: Any, name: str, base: type) -> bool:
    """Whether `estimator`'s class takes its `name` from `base` (whose method this module reproduces)."""
    own = inspect.getattr_static(base, name, None)
    return own is not None and isinstance(estimator, base) and inspect.getattr_static(type(estimator), name) is own


def _linear_classifier(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `LinearClassifierMixin.predict` and `.decision_function` compute."""
    from sklearn.linear_model._base import LinearClassifierMixin

    if name not in ("predict", "decision_function") or not _owns(estimator, name, LinearClassifierMixin):
        return None
    coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
    classes = getattr(estimator, "classes_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim != 2 or not isinstance(classes, np.ndarray):
        return None  # sparse coefficients (after `sparsify()`), or not a plain classifier

    def scores(features: np.ndarray) -> np.ndarray:
        result = features @ coef.T + intercept
        return result.reshape(-1) if result.shape[1] == 1 else result

    def predict(features: np.ndarray) -> np.ndarray:
        found = scores(features)
        indices = (found > 0).astype(np.intp) if found.ndim == 1 else found.argmax(axis=1)
        return classes.take(indices, axis=0)

    return predict if name == "predict" else scores


def _linear_regressor(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `LinearModel.predict` computes."""
    from sklearn.linear_model._base import LinearModel, MultiOutputLinearModel

    if name != "predict" or not isinstance(estimator, LinearModel):
        return None
    if not (_owns(estimator, name, LinearModel) or _owns(estimator, name, MultiOutputLinearModel)):
        return None
    if not _owns(estimator, "_decision_function", LinearModel):
        return None
    coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
    if not isinstance(coef, np.ndarray):
        return None
    coef = coef.T if coef.ndim == 2 else coef

    def predict(features: np.ndarray) -> np.ndarray:
        return features @ coef + intercept

    return predict


def _tree(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's single trees' `predict` and `predict_proba` compute."""
    table = _leaf_table(estimator, name)
    if table is None:
        return None
    tree = estimator.tree_

    def compute(features: np.ndarray) -> np.ndarray:
        return table.take(tree.apply(np.ascontiguousarray(features, dtype=np.float32)), axis=0)

    return compute


def _leaf_table(estimator: Any, name: str) -> np.ndarray | None:
    """Per node of a single tree whose class uses scikit-learn's `name`, what `name` answers for a row ending there:
    a classifier's class (one label a node, made here), its probabilities or a regressor's value (views of the
    tree's own values: a forest's tables take no memory of their own)."""
    from sklearn.base import is_classifier
    from sklearn.tree import BaseDecisionTree, DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    base = BaseDecisionTree if name == "predict" else DecisionTreeClassifier
    if name not in ("predict", "predict_proba") or not _owns(estimator, name, base):
        return None
    if type(getattr(estimator, "tree_", None)) is not Tree:
        return None
    value, outputs = estimator.tree_.value, estimator.n_outputs_
    if not is_classifier(estimator):
        return None if name != "predict" else value[:, 0, 0] if outputs == 1 else value[:, :, 0]
    classes = estimator.classes_
    if name == "predict_proba":
        return value[:, 0, : estimator.n_classes_] if outputs == 1 else None  # several outputs: a list
    if outputs == 1:
        return classes.take(np.argmax(value[:, 0, :], axis=1), axis=0)
    table = np.zeros((len(value), outputs), dtype=classes[0].dtype)
    for k in range(outputs):
        table[:, k] = classes[k].take(np.argmax(value[:, k, :], axis=1), axis=0)
    return table


def _forest(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's forests' `predict` and `predict_proba` compute (with `n_jobs=1`)."""
    from sklearn.ensemble._forest import ForestClassifier, ForestRegressor

    classifier = name in ("predict", "predict_proba") and _owns(estimator, name, ForestClassifier)
    if not classifier and not (name == "predict" and _owns(estimator, name, ForestRegressor)):
        return None
    if classifier and (estimator.n_outputs_ != 1 or not _owns(estimator, "predict_proba", ForestClassifier)):
        return None
    members = estimator.estimators_
    tables = [_leaf_table(member, "predict_proba" if classifier else "predict") for member in members]
    if not members or any(table is None for table in tables):
        return None
    trees = [member.tree_ for member in members]
    width = tables[0].shape[1:]

    def mean(features: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        total = np.zeros((len(rows), *width), dtype=np.float64)
        for tree, table in zip(trees, tables):
            total += table.take(tree.apply(rows), axis=0)
        total /= len(trees)
        return total

    if not classifier or name == "predict_proba":
        return mean
    classes = estimator.classes_

    def predict(features: np.ndarray) -> np.ndarray:
        return classes.take(np.argmax(mean(features), axis=1), axis=0)

    return predict


def _boosting(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `GradientBoostingClassifier` and `GradientBoostingRegressor` compute."""
    from sklearn.ensemble._gb import BaseGradientBoosting, GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.ensemble._gradient_boosting import predict_stages

    methods = {GradientBoostingClassifier: ("predict", "predict_proba", "decision_function")}
    methods[GradientBoostingRegressor] = ("predict",)
    kind = next((k for k in methods if isinstance(estimator, k)), None)
    if kind is None or name not in methods[kind] or not _owns(estimator, name, kind):
        return None
    if kind is GradientBoostingClassifier and not _owns(estimator, "decision_function", kind):
        return None
    if not all(_owns(estimator, m, BaseGradientBoosting) for m in ("_raw_predict", "_raw_predict_init")):
        return None
    initial = _initial(estimator)
    if initial is None:
        return None
    stages, rate, loss = estimator.estimators_, estimator.learning_rate, estimator._loss

    def scores(features: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        raw = np.repeat(initial, len(rows), axis=0)
        predict_stages(stages, rows, rate, raw)
        return raw.ravel() if raw.shape[1] == 1 else raw

    if kind is GradientBoostingRegressor or name == "decision_function":
        return scores
    if name == "predict_proba":
        return lambda features: loss.predict_proba(scores(features))
    classes = estimator.classes_

    def predict(features: np.ndarray) -> np.ndarray:
        found = scores(features)
        return classes[(found >= 0).astype(int) if found.ndim == 1 else np.argmax(found, axis=1)]

    return predict


def _initial(estimator: Any) -> np.ndarray | None:
    """A gradient-boosting model's raw prediction before its stages, as one row (1, trees per stage), where it is
    the same for every row: a zero init, or a dummy estimator answering a constant; else None."""
    from sklearn.base import is_classifier
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble._gb import _init_raw_predictions

    init, width = estimator.init_, estimator.n_trees_per_iteration_
    if isinstance(init, str):
        return np.zeros((1, width), dtype=np.float64) if init == "zero" else None
    if not (type(init) is DummyRegressor or (type(init) is DummyClassifier and init.strategy != "stratified")):
        return None
    row = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
    return np.ascontiguousarray(_init_raw_predictions(row, init, estimator._loss, is_classifier(estimator)))


def _histogram(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `HistGradientBoostingClassifier` and `HistGradientBoostingRegressor` compute, for one
    fitted without categorical features (no preprocessor of its own): the float64 matrix through each tree's
    predictor in stage order, from the baseline, then the loss link; the categories' bitsets and the thread count
    are made once at load (one row's result does not depend on the thread count)."""
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    methods = {HistGradientBoostingClassifier: ("predict", "predict_proba", "decision_function")}
    methods[HistGradientBoostingRegressor] = ("predict",)
    kind = next((k for k in methods if isinstance(estimator, k)), None)
    if kind is None or name not in methods[kind] or not _owns(estimator, name, kind):
        return None
    inner = ("_raw_predict", "_predict_iterations", "_preprocess_X")
    if not all(_owns(estimator, m, BaseHistGradientBoosting) for m in inner) or estimator._preprocessor is not None:
        return None
    known_categories, feature_index = estimator._bin_mapper.make_known_categories_bitsets()
    threads = _openmp_effective_n_threads()
    stages, baseline, loss = estimator._predictors, estimator._baseline_prediction, estimator._loss

    def raw(features: np.ndarray) -> np.ndarray:
        rows = np.asarray(features, dtype=np.float64)
        result = np.zeros((len(rows), len(stages[0])), dtype=baseline.dtype, order="F")
        result += baseline
        for stage in stages:
            for k, predictor in enumerate(stage):
                result[:, k] += predictor.predict(rows, known_categories, feature_index, threads)
        return result

    def scores(features: np.ndarray) -> np.ndarray:
        found = raw(features)
        return found.ravel() if found.shape[1] == 1 else found

    if kind is HistGradientBoostingRegressor:
        return lambda features: loss.link.inverse(raw(features).ravel())
    if name == "predict_proba":
        return lambda features: loss.predict_proba(raw(features))
    if name == "decision_function":
        return scores
    classes = estimator.classes_

    def predict(features: np.ndarray) -> np.ndarray:
        found = scores(features)
        return classes[(found > 0).astype(int) if found.ndim == 1 else np.argmax(found, axis=1)]

    return predict


def _scaler(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's StandardScaler, MinMaxScaler, MaxAbsScaler and RobustScaler `transform` compute (on a
    copy: integers become float64, floats keep their dtype)."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    if name != "transform":
        return None
    kind = next(
        (k for k in (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler) if isinstance(estimator, k)), None
    )
    if kind is None or not _owns(estimator, name, kind):
        return None
    steps: list[tuple[np.ufunc, np.ndarray, bool]] = []  # in-place ufunc, operand, operand cast to the matrix's dtype
    if kind is StandardScaler:
        steps += [(np.subtract, estimator.mean_, True)] if estimator.with_mean else []
        steps += [(np.divide, estimator.scale_, True)] if estimator.with_std else []
    elif kind is MinMaxScaler:
        steps += [(np.multiply, estimator.scale_, False), (np.add, estimator.min_, False)]
        if estimator.clip:
            low, high = estimator.feature_range
            steps += [(np.maximum, np.asarray(low), True), (np.minimum, np.asarray(high), True)]
    elif kind is MaxAbsScaler:
        steps += [(np.divide, estimator.scale_, False)]
        steps += [(np.maximum, np.asarray(-1.0), True), (np.minimum, np.asarray(1.0), True)] if estimator.clip else []
    else:
        steps += [(np.subtract, estimator.center_, False)] if estimator.with_centering else []
        steps += [(np.divide, estimator.scale_, False)] if estimator.with_scaling else []
    by_dtype = {
        np.dtype(t): [(f, operand.astype(t) if cast else operand) for f, operand, cast in steps]
        for t in ("float64", "float32")
    }

    def transform(features: np.ndarray) -> np.ndarray:
        result = features.astype(np.float64) if features.dtype.kind != "f" else features.copy()
        for ufunc, operand in by_dtype[result.dtype]:
            ufunc(result, operand, out=result)
        return result

    return transform


def _pipeline(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `Pipeline.name` computes, where every step has a direct computation: the first step's
    on the (already guarded) input, every later step's guarded, with that step's own checked method for any input
    its computation was not made for, as the pipeline would call it."""
    from sklearn.pipeline import Pipeline

    if not _owns(estimator, name, Pipeline):
        return None
    steps = [step for _, step in estimator.steps if step is not None and not isinstance(step, str)]  # no passthrough
    if not steps:
        return None
    named = [(step, "transform") for step in steps[:-1]] + [(steps[-1], name)]
    parts = [(_compute(s, method), getattr(s, method), getattr(s, "n_features_in_", None)) for s, method in named]
    if any(compute is None or not isinstance(n_features, int) for compute, _, n_features in parts):
        return None
    first = parts[0][0]
    later = [_guarded(compute, checked, n_features) for compute, checked, n_features in parts[1:]]

    def compute(features: np.ndarray) -> np.ndarray:
        result = first(features)
        for step in later:
            result = step(result)
        return result

    return compute


# Each direct computation after the package its estimators' classes come from.
_KNOWN: tuple[tuple[str, Callable[[Any, str], Compute | None]], ...] = (
    ("sklearn.linear_model", _linear_classifier),
    ("sklearn.linear_model", _linear_regressor),
    ("sklearn.tree", _tree),
    ("sklearn.ensemble._forest", _forest),
    ("sklearn.ensemble._gb", _boosting),
    ("sklearn.ensemble._hist_gradient_boosting", _histogram),
    ("sklearn.preprocessing", _scaler),
    ("sklearn.pipeline", _pipeline),
)


@contextmanager
def _serial(estimator: Any) -> Iterator[None]:
    """`estimator` with each of its (nested) `n_jobs` parameters set to 1 meanwhile, so that a forest's checked
    method sums its trees in tree order, as its direct computation does (threads add them as each finishes)."""
    try:
        parallel = {k: v for k, v in estimator.get_params(deep=True).items() if k.split("__")[-1] == "n_jobs"}
    except Exception:  # not a scikit-learn estimator's parameters
        parallel = {}
    parallel = {k: v for k, v in parallel.items() if v not in (None, 1)}
    if parallel:
        estimator.set_params(**dict.fromkeys(parallel, 1))
    try:
        yield
    finally:
        if parallel:
            estimator.set_params(**parallel)


def _same(direct: Compute, checked: Compute, n_features: int) -> bool:
    """Whether `direct` gives exactly what `checked` gives, for a few rows of each dtype direct computations take."""
    rng = np.random.default_rng(0)
    probes = [rng.normal(scale=10, size=(5, n_features)).astype(t) for t in ("float64", "float32")]
    probes += [rng.integers(-10, 10, size=(5, n_features)).astype(t) for t in ("int64", "int32")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. fitted with feature names, probed without
        for probe in probes:
            try:
                expected, found = checked(probe), direct(probe)
            except Exception:
                return False
            if not isinstance(found, np.ndarray) or not isinstance(expected, np.ndarray):
                return False
            if found.dtype != expected.dtype or found.shape != expected.shape or not np.array_equal(found, expected):
                return False
    return True
