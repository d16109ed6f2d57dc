"""What a model-server process imports before it loads its models, kept to what serving them needs.

scikit-learn imports pandas whenever pandas is installed (`sklearn.utils.fixes` keeps it in a name nothing reads),
and pandas imports pyarrow: about 65 MiB resident in every replica, whether or not its model ever sees a DataFrame.
`prepare` imports scikit-learn with pandas hidden for that one import. A model or runtime that needs pandas imports
it when it does (the sklearn runtime does for named columns; unpickling a pipeline that holds pandas objects does),
and scikit-learn finds it then, since it looks for DataFrames in `sys.modules`. Costs nothing per request.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def prepare() -> None:
    """Import scikit-learn, where it is installed, without the pandas it would import for nothing."""
    if "sklearn" in sys.modules or importlib.util.find_spec("sklearn") is None:
        return
    with _hidden("pandas"):
        importlib.import_module("sklearn.utils.fixes")


@contextmanager
def _hidden(name: str) -> Iterator[None]:
    """`import name` raises ImportError meanwhile (unless it is imported already)."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # what the import system reads as "not installed"
    try:
        yield
    finally:
        if sys.modules.get(name, ...) is None:
            del sys.modules[name]
