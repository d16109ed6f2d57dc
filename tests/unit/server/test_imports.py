"""A model server imports scikit-learn without pandas (and pyarrow), and pandas still works once a model needs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_scikit_learn_is_imported_without_pandas() -> None:
    code = "import sys; from wharf.server import imports; imports.prepare(); {}; print(sorted(m for m in ('sklearn', 'pandas', 'pyarrow') if m in sys.modules))"
    assert _run(code.format("pass")) == "[]"  # nor scikit-learn, until something imports it
    assert _run(code.format("import sklearn.linear_model")) == "['sklearn']"


def test_pandas_imports_later_and_scikit_learn_sees_its_dataframes() -> None:
    code = """
from wharf.server import imports
imports.prepare()
import sklearn
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
frame = pd.DataFrame({"colour": ["red", "blue", "red", "blue"], "size": [1.0, 2.0, 1.5, 2.5]})
model = make_pipeline(make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"), LogisticRegression())
model.fit(frame, [0, 1, 0, 1])
print(list(model.feature_names_in_), model.predict(frame.iloc[:2]).tolist())
"""
    assert _run(code) == "['colour', 'size'] [0, 1]"


def test_pandas_imported_first_stays() -> None:
    code = "import pandas, sys; from wharf.server import imports; imports.prepare(); import sklearn; print(sys.modules['pandas'] is pandas)"
    assert _run(code) == "True"
