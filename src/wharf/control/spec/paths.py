"""A manifest's relative paths, read from the directory of the file that holds it (as kubectl and kustomize read
theirs), not from wherever the daemon runs.

`resolve_paths(service, base)` rewrites a validated InferenceService, `base` being the manifest's directory:

- a relative local `storageUri` (a plain path such as `./model.joblib` or `models/iris`) becomes `base/...`, an
  explainer's background data (`shap.storageUri`) too;
- relative PYTHONPATH entries of `env` become `base/...`;
- a TrainedModel's relative `storageUri` becomes `base/...` (`resolve_trained_model_path`);
- a custom class (`module:Class`) whose module lies in `base` (a `module.py` file or a `module/` directory) puts
  `base` first on the component's PYTHONPATH, so that its replicas import it from there. A class whose module is
  not there imports from the daemon's environment, as before.

The result is what is stored and shown, so re-applying it anywhere changes nothing; the policy checks the result
(the storage roots, and the code roots for every PYTHONPATH entry, `base` included). It reads the file system only
to look for a class's module.
"""

from __future__ import annotations

import os
from pathlib import Path

from wharf.control.spec.common import EnvVar
from wharf.control.spec.inferenceservice import InferenceService, ModelSpec
from wharf.control.spec.trainedmodel import TrainedModel
from wharf.storage.uri import scheme

PYTHONPATH = "PYTHONPATH"


def resolve_paths(service: InferenceService, base: Path) -> None:
    """Make the relative paths of every component's model absolute under `base` (an absolute directory)."""
    for component in service.components().values():
        if component.model is not None:
            _resolve(component.model, base)
    explainer = service.spec.explainer
    method = explainer.method if explainer is not None else None
    if method is not None and method.storage_uri and scheme(method.storage_uri) == "":
        method.storage_uri = _under(base, method.storage_uri)


def resolve_trained_model_path(model: TrainedModel, base: Path) -> None:
    """Make a TrainedModel's relative local `storageUri` absolute under `base`."""
    uri = model.spec.model.storage_uri
    if scheme(uri) == "":
        model.spec.model.storage_uri = _under(base, uri)


def _resolve(model: ModelSpec, base: Path) -> None:
    for variable in model.env:
        if variable.name == PYTHONPATH:
            variable.value = os.pathsep.join(_under(base, e) if e else e for e in variable.value.split(os.pathsep))
    uri = model.storage_uri or ""
    if model.names_class:
        if _module_in(base, uri.partition(":")[0].partition(".")[0]):
            _put_first_on_path(model, str(base))
    elif uri and scheme(uri) == "":
        model.storage_uri = _under(base, uri)


def _module_in(base: Path, module: str) -> bool:
    """Whether `base` holds the module (`module.py` or `module/`); a name the file system refuses (too long) is not
    there."""
    try:
        return (base / f"{module}.py").is_file() or (base / module).is_dir()
    except OSError:
        return False


def _under(base: Path, path: str) -> str:
    return os.path.normpath(base / path)  # an absolute `path` stays as it is


def _put_first_on_path(model: ModelSpec, entry: str) -> None:
    variable = next((v for v in model.env if v.name == PYTHONPATH), None)
    if variable is None:
        model.env.append(EnvVar(name=PYTHONPATH, value=entry))
    elif entry not in variable.value.split(os.pathsep):
        variable.value = f"{entry}{os.pathsep}{variable.value}" if variable.value else entry
