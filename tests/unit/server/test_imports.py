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


def test_another_thread_imports_pandas_while_scikit_learn_is_imported_without_it() -> None:
    # A gate holds the thread importing scikit-learn inside `sklearn.utils.fixes` (pandas hidden from it) while the
    # main thread imports pandas, as models loading in threads may.
    code = """
import importlib.abc, importlib.util, sys, threading
from wharf.server import imports

inside, pandas_done = threading.Event(), threading.Event()

class Gate(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # Finders run under the global import lock: the gate waits in the loader, as a slow import does.
    def find_spec(self, fullname, path, target=None):
        if fullname != "scipy.stats":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        inside.set()
        assert pandas_done.wait(60), "the main thread did not import pandas"
        self.loader.exec_module(module)

sys.meta_path.insert(0, Gate())
imports.prepare()
loading = threading.Thread(target=lambda: __import__("sklearn.linear_model"))
loading.start()
assert inside.wait(60), "scikit-learn never reached sklearn.utils.fixes"
try:
    import pandas
    print(pandas.DataFrame({"a": [1]}).shape)
finally:
    pandas_done.set()
loading.join(60)
print("sklearn.linear_model" in sys.modules, [f.hiding for f in sys.meta_path if type(f).__module__ == imports.__name__])
"""
    assert _run(code) == "(1, 1)\nTrue [set()]"
