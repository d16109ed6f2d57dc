"""What a model-server process imports before it loads its models, kept to what serving them needs.

scikit-learn imports pandas whenever pandas is installed (`sklearn.utils.fixes` keeps it in a name nothing reads),
and pandas imports pyarrow: about 65 MiB resident in every replica, whether or not its model ever sees a DataFrame.
After `prepare`, that one module is imported with pandas hidden from the thread importing it (other threads, such
as models loading beside it, import pandas as usual meanwhile), whenever scikit-learn is first imported (a server
whose runtime does not use scikit-learn does not import it). A model or runtime that needs pandas imports it when
it does (the sklearn runtime does for named columns; unpickling a pipeline that holds pandas objects does), and
scikit-learn finds it then, since it looks for DataFrames in `sys.modules`. Costs nothing per request.

The trade-off: a replica forked from the pre-warmed template whose model needs pandas imports pandas and pyarrow
on its own (about 65 MiB, private to it rather than shared with the template and its other replicas).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

_WITHOUT_PANDAS = "sklearn.utils.fixes"


def prepare() -> None:
    """Have scikit-learn imported without pandas, when it is imported (once per process)."""
    if _WITHOUT_PANDAS not in sys.modules and not any(isinstance(f, _WithoutPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _WithoutPandas())


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Finds `sklearn.utils.fixes` as the other finders do, with a loader that runs it with pandas hidden from its
    thread: `import pandas` raises ModuleNotFoundError there (unless pandas is imported already), while any other
    thread imports it as usual (models load in threads: `ModelRepository.load_all`). It stays in `sys.meta_path`
    (a string comparison per import): taking a finder out while another thread walks that list could make that
    thread skip the next one."""

    def __init__(self) -> None:
        self.hiding: set[int] = set()  # the threads running `sklearn.utils.fixes`

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pandas" and threading.get_ident() in self.hiding:
            raise ModuleNotFoundError(f"No module named 'pandas' (hidden while {_WITHOUT_PANDAS} runs)", name=fullname)
        if fullname != _WITHOUT_PANDAS:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None and (spec := find(fullname, path, target)) is not None:
                if spec.loader is not None:
                    spec.loader = _HidingPandas(spec.loader, self.hiding)
                return spec
        return None


class _HidingPandas(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, hiding: set[int]) -> None:
        self.loader, self.hiding = loader, hiding

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        thread = threading.get_ident()
        self.hiding.add(thread)
        try:
            self.loader.exec_module(module)
        finally:
            self.hiding.discard(thread)
