"""What a manifest may do on this machine, checked when it is applied: where its models load from, which code it
runs, which environment its replicas get, and how much it asks for. Settings: `ManifestPolicy` (environment prefix
`WHARF_POLICY_`); each refusal names the field and the setting that would allow it.

Whoever may apply a manifest chooses code that runs as the daemon's user: a custom class is Python code, and so is
a pickle (unpickling calls whatever functions the file names, as scikit-learn's and PyTorch's documentation warn).
The rules, in the order they are checked, for the model of each component (predictor, transformer, explainer):

- **Custom classes** (`modelFormat: custom`, or a storageUri the model server reads as `module:Class`, such as
  `s3:Model`: `custom.names_class` is the one reading of both) load only while `custom_classes` is on (the
  default). A replica imports the class from its Python path: the daemon's own environment and working directory
  (replicas run there), and the PYTHONPATH entries the manifest's `env` gives,
  each of which must lie under `code_roots` (default: the daemon's working directory). A class whose module lies
  beside the manifest file adds the file's directory to that PYTHONPATH (`spec.paths`), so that directory too must
  lie under `code_roots`: code from elsewhere runs only where the operator said it may.
- **Storage**: the storageUri's scheme must be one of `storage_schemes` (a plain path counts as `file`). A local
  path (relative ones are from the manifest file's directory when the apply names it, else from the daemon's
  working directory; symbolic links followed) must lie under `storage_roots` (default: the daemon's working
  directory) or WHARF_HOME/models, and never elsewhere in WHARF_HOME, whatever the roots hold (its default,
  `.wharf`, is in the working directory): its tokens, database and logs are no models, and a model's errors may
  show what it read. `pvc://` paths lie under the operator's WHARF_PVC_ROOT.
- **Pickles**: a format whose artifacts are pickles (`PICKLE_FORMATS`) loads only from `pickle_schemes`; by
  default not over http(s), where anyone on the way may hand over a file. A scheme names no owner: `s3://` is
  anyone's bucket, so this limits how a pickle travels, not who wrote it.
- **Environment**: no variable matching `DENIED_ENV` (the interpreter's and the dynamic loader's variables, where
  programs find what they run, the frameworks' model sources, the storage clients' endpoints, proxies, trusted
  certificate authorities and credentials, Wharf's own settings but its tuning knobs `TUNING_ENV`) or the patterns
  of `env_denylist` (shell patterns, added to the built-in ones), names compared without regard to case;
  PYTHONPATH as above.
- **Arguments**: `args` may give only the model server's `SERVER_OPTIONS` (and a Hugging Face model's KServe arguments,
  `spec.huggingface.OPTIONS`); the rest of a replica's command line
  (its address, ports, runtime) is Wharf's.
- **Replicas**: minReplicas, maxReplicas and Knative's min-scale, max-scale and initial-scale annotations are at
  most `max_replicas_per_revision`.

Across the machine (with the resources already stored): at most `max_resources` InferenceServices and
InferenceGraphs, and at most `max_documents` per apply. (The replicas of the whole machine are the reconciler's
cap, WHARF_MAX_REPLICAS.)
The policy is checked at apply only: tightening it does not stop what already runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from fsspec.core import strip_protocol
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.autoscaler.annotations import PREFIX as KNATIVE_PREFIX
from wharf.autoscaler.annotations import SETTINGS as KNATIVE_SETTINGS
from wharf.control.spec import InferenceGraph, InferenceService, Manifest, ModelSpec, Scaling, huggingface
from wharf.control.spec.batchjob import SERVICE_PREFIX, BatchJob, BatchJobSpec
from wharf.control.spec.common import EnvVar, Loc, Problem, format_path
from wharf.control.spec.explainer import ExplainerContainer
from wharf.control.spec.trainedmodel import TrainedModel
from wharf.model.runtimes.custom import names_class
from wharf.storage.uri import scheme

#: Model formats whose artifacts are pickles, and what in them is.
#: Model files a BatchJob may name that hold no pickle (ONNX, XGBoost's and LightGBM's own formats).
_NO_PICKLE_SUFFIXES = frozenset({".onnx", ".json", ".ubj", ".txt"})
PICKLE_FORMATS = {
    "sklearn": "joblib and pickle files are pickles",
    "pytorch": "TorchScript archives hold pickles",
}
#: Environment variables (shell patterns, matched without regard to case: libraries read `https_proxy` as
#: `HTTPS_PROXY`, and Wharf's settings `wharf_host` as `WHARF_HOST`) a manifest never sets: they change what a
#: replica loads or runs, or where (and from whom) it fetches its model. Credentials belong in the daemon's
#: environment, which replicas inherit.
DENIED_ENV = (
    "PYTHON*",  # the interpreter: where it imports from, what it runs first (PYTHONPATH: under code_roots)
    "LD_*",  # the dynamic loader: libraries loaded into every process
    "DYLD_*",
    "GCONV_PATH",
    "OPENSSL_*",  # OpenSSL's configuration file may load an engine (a shared library)
    "PATH",  # where programs, and the files they read, are found
    "HOME",
    "XDG_*",
    "TORCH*",  # torch.load's safety switch, compiled-code caches
    "NUMBA_*",
    "KERAS_*",  # which framework reads a Keras model, and its configuration file
    "HF_*",  # Hugging Face: the hub's address, caches, what from_pretrained reads
    "HUGGINGFACE_*",
    "TRANSFORMERS_*",
    # storage: where a URI's bytes come from (an endpoint, a proxy, a trusted CA, a credential naming a program)
    "AWS_*",  # botocore: AWS_ENDPOINT_URL*, AWS_CA_BUNDLE, AWS_CONFIG_FILE (credential_process), profiles
    "BOTO_*",
    "S3_*",  # S3_ENDPOINT, S3_USE_HTTPS (Wharf's StorageSettings read them, as KServe does)
    "STORAGE_EMULATOR_HOST",  # gs:// from another server
    "GOOGLE_*",  # GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES, mTLS endpoints
    "GCE_METADATA_*",  # where google-auth asks for tokens
    "CLOUDSDK_*",  # gcloud's configuration directory and its credentials
    "GCSFS_*",
    "AZURE_*",  # AZURE_STORAGE_ACCOUNT_NAME, AZURE_AUTHORITY_HOST, credential files
    "IDENTITY_*",  # Azure's managed identity endpoints
    "MSI_*",
    "IMDS_ENDPOINT",
    "FSSPEC_*",  # FSSPEC_<PROTOCOL>_<OPTION>: any filesystem option (an endpoint), FSSPEC_CONFIG_DIR
    "*_PROXY",  # HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY
    "SSL_CERT_*",  # the certificate authorities a TLS connection trusts
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSLKEYLOGFILE",  # TLS session keys written to a file
    "PROMETHEUS_MULTIPROC_DIR",
    "WHARF_*",  # a replica's own settings: its address, storage, what its API allows
)
#: Wharf's settings that only tune a replica: a manifest may set them.
TUNING_ENV = (
    "WHARF_PREDICT_THREADS",
    "WHARF_MAX_QUEUED_REQUESTS",
    "WHARF_MAX_QUEUED_EXPLANATIONS",
    "WHARF_MAX_BATCH_SIZE",
    "WHARF_MAX_BATCH_LATENCY_MS",
    "WHARF_LOG_LEVEL",
    "WHARF_ONNX_*",
    "WHARF_TF_*",
    "WHARF_HF_TASK",
    "WHARF_MEMORY_BUDGET",  # a multi-model replica's budget for its models
)
#: The model server's options that `args` may give (each with its value, as `--option N` or `--option=N`).
SERVER_OPTIONS = ("--max-batch-size", "--max-latency-ms")
#: The directory of WHARF_HOME that models may load from (the rest of it is Wharf's own state).
HOME_MODELS = "models"
_PYTHONPATH = "PYTHONPATH"
_SCALE_SETTINGS = ("min_scale", "max_scale", "initial_scale")


def _cwd() -> tuple[Path, ...]:
    return (Path.cwd(),)


class ManifestPolicy(BaseSettings):
    """What a manifest may do (see the module's docstring); one per control plane."""

    model_config = SettingsConfigDict(env_prefix="WHARF_POLICY_", extra="ignore", validate_by_name=True)

    storage_schemes: tuple[str, ...] = Field(
        ("file", "pvc", "s3", "gs", "az", "http", "https"), description="where models may load from"
    )
    storage_roots: tuple[Path, ...] = Field(
        default_factory=_cwd, description="local directories models may load from (besides WHARF_HOME/models)"
    )
    home: Path | None = Field(
        None,
        validation_alias="WHARF_HOME",
        description="the daemon's state directory (WHARF_HOME): models load from its models/ directory, never from"
        " the rest of it",
    )
    pickle_schemes: tuple[str, ...] = Field(
        ("file", "pvc", "s3", "gs", "az"), description="where pickle-based formats may load from"
    )
    custom_classes: bool = Field(True, description="whether a manifest may name a Python class to run")
    code_roots: tuple[Path, ...] = Field(
        default_factory=_cwd, description="directories a manifest's PYTHONPATH entries may name"
    )
    env_denylist: tuple[str, ...] = Field((), description="more environment variables (shell patterns) to refuse")
    max_replicas_per_revision: int = Field(64, ge=1, description="replicas of one revision")
    max_resources: int = Field(100, ge=1, description="InferenceServices and InferenceGraphs on the machine")
    max_documents: int = Field(100, ge=1, description="documents in one apply")

    @field_validator("storage_schemes", "pickle_schemes")
    @classmethod
    def _scheme_names(cls, schemes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s.lower().removesuffix("://") for s in schemes)

    @field_validator("storage_roots", "code_roots")
    @classmethod
    def _absolute(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(root.expanduser().resolve() for root in roots)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path | None) -> Path | None:
        return home.expanduser().resolve() if home is not None else None

    @classmethod
    def setting(cls, field: str) -> str:
        """The environment variable of a field, e.g. WHARF_POLICY_MAX_DOCUMENTS."""
        return f"{cls.model_config['env_prefix']}{field.upper()}"

    @property
    def home_models(self) -> Path | None:
        """WHARF_HOME/models, where models in WHARF_HOME may be (symbolic links followed)."""
        return (self.home / HOME_MODELS).resolve() if self.home is not None else None

    @property
    def local_roots(self) -> tuple[Path, ...]:
        return (*self.storage_roots, *((self.home_models,) if self.home_models is not None else ()))

    def problems(self, manifest: Manifest, base: Path | None = None) -> list[tuple[str, str]]:
        """What `manifest` (validated; its relative paths read from `base`, the manifest file's directory, when
        given) may not do here, as (field path, reason)."""
        found: list[Problem] = []
        if isinstance(manifest, InferenceService):
            for name, component in manifest.components().items():
                found += self._replica_problems(component, ("spec", name))
                if component.model is not None:
                    found += self._model_problems(component.model, ("spec", name, "model"), base)
            if (explainer := manifest.spec.explainer) is not None and explainer.method is not None:
                found += self._explainer_problems(
                    explainer.method, ("spec", "explainer", "art" if explainer.art else "shap")
                )
            found += self._annotation_problems(manifest.metadata.annotations)
        elif isinstance(manifest, InferenceGraph):
            found += self._replica_problems(manifest.spec, ("spec",))
        elif isinstance(manifest, BatchJob):
            found += self._batch_job_problems(manifest.spec)
        elif isinstance(manifest, TrainedModel):  # loaded into its parent's replicas: held to a model's rules
            model = manifest.spec.model
            found += self._storage_problems(model.framework, model.storage_uri, ("spec", "model", "storageUri"))
        return [(format_path(loc), reason) for loc, reason in found]

    def too_many_resources(self, resources: int) -> str | None:
        """Why the machine may not hold `resources` InferenceServices and InferenceGraphs, or None when it may."""
        if resources <= self.max_resources:
            return None
        return (
            f"this apply would make {resources} InferenceServices and InferenceGraphs; this Wharf holds at most"
            f" {self.max_resources} ({self.setting('max_resources')})"
        )

    # -- the rules -------------------------------------------------------------------------------------------------

    def _model_problems(self, model: ModelSpec, at: Loc, base: Path | None) -> Iterator[Problem]:
        uri = model.storage_uri or ""
        if model.names_class:
            if not self.custom_classes:
                yield (
                    (*at, "storageUri"),
                    f"{uri} is a Python class, and this Wharf runs none from manifests"
                    f" ({self.setting('custom_classes')})",
                )
        elif not model.is_multi_model:  # a multi-model server's models are its TrainedModels'
            yield from self._storage_problems(model.model_format.name, uri, (*at, "storageUri"))
        allowed = (*SERVER_OPTIONS, *huggingface.OPTIONS) if model.model_format.name == huggingface.FORMAT else None
        yield from self._container_problems(model.env, model.args, at, base, allowed)

    def _batch_job_problems(self, spec: BatchJobSpec) -> Iterator[Problem]:
        """A BatchJob's model is held to a replica's rules (a file not known to hold no pickle counts as one)."""
        if spec.model.startswith(SERVICE_PREFIX):
            return
        if names_class(spec.model):
            if not self.custom_classes:
                yield ("spec", "model"), f"{spec.model} is a Python class, and this Wharf runs none from manifests"
        else:
            unpickled = Path(spec.model).suffix in _NO_PICKLE_SUFFIXES
            yield from self._storage_problems("batch" if unpickled else "sklearn", spec.model, ("spec", "model"))

    def _explainer_problems(self, method: ExplainerContainer, at: Loc) -> Iterator[Problem]:
        """A built-in explainer's: its data (no pickle: `wharf.explain` reads NPY without pickles) and container."""
        if method.storage_uri:
            yield from self._storage_problems("data", method.storage_uri, (*at, "storageUri"))
        yield from self._container_problems(method.env, method.args, at, None)

    def _container_problems(
        self,
        env: Sequence[EnvVar],
        args: Sequence[str],
        at: Loc,
        base: Path | None,
        allowed: Sequence[str] | None = None,
    ) -> Iterator[Problem]:
        for i, variable in enumerate(env):
            if variable.name == _PYTHONPATH:
                yield from self._code_path_problems(variable.value, (*at, "env", i, "value"), base)
            elif reason := self._denied(variable.name):
                yield (*at, "env", i, "name"), reason
        yield from _argument_problems(args, (*at, "args"), allowed or SERVER_OPTIONS)

    def _storage_problems(self, model_format: str, uri: str, at: Loc) -> Iterator[Problem]:
        found = scheme(uri) or "file"
        if found not in self.storage_schemes:
            yield (
                at,
                f"{found}:// is not among the storage schemes this Wharf loads from:"
                f" {', '.join(self.storage_schemes)} ({self.setting('storage_schemes')})",
            )
            return
        if found == "file":
            path = Path(strip_protocol(uri)).resolve()  # a relative path is the replica's: from the working directory
            if self._is_state(path):
                yield (
                    at,
                    f"{path} is Wharf's own state (WHARF_HOME: its tokens, database and logs), not a model; models"
                    f" in WHARF_HOME go in {self.home_models}",
                )
            elif not _under(path, self.local_roots):
                yield (
                    at,
                    f"{path} is outside the directories models load from: {_listed(self.local_roots)}"
                    f" ({self.setting('storage_roots')}, or WHARF_HOME/{HOME_MODELS})",
                )
        if model_format in PICKLE_FORMATS and found not in self.pickle_schemes:
            yield (
                at,
                f"a {model_format} model is a pickle ({PICKLE_FORMATS[model_format]}), and loading a pickle runs the"
                f" code it names: this Wharf loads pickles only from {', '.join(self.pickle_schemes) or 'nowhere'}"
                f" ({self.setting('pickle_schemes')})",
            )

    def _is_state(self, path: Path) -> bool:
        """Whether `path` (resolved) is in WHARF_HOME but not in its models directory."""
        home, models = self.home, self.home_models
        return home is not None and models is not None and _under(path, (home,)) and not _under(path, (models,))

    def _code_path_problems(self, value: str, at: Loc, base: Path | None) -> Iterator[Problem]:
        for entry in value.split(os.pathsep):
            path = Path(entry or ".").resolve()  # an empty entry is the working directory
            if not _under(path, self.code_roots):
                beside = " (the manifest's directory, where the class's module is)" if Path(entry) == base else ""
                yield (
                    at,
                    f"{_PYTHONPATH} names {path}{beside}, outside the directories code loads from:"
                    f" {_listed(self.code_roots)} ({self.setting('code_roots')})",
                )

    def _denied(self, name: str) -> str | None:
        """Why a manifest may not set the environment variable `name` (compared without regard to case), or None
        when it may."""
        upper = name.upper()
        if any(fnmatchcase(upper, pattern.upper()) for pattern in self.env_denylist):
            return f"{name} may not be set by a manifest on this Wharf ({self.setting('env_denylist')})"
        if any(fnmatchcase(upper, pattern) for pattern in TUNING_ENV):
            return None
        if any(fnmatchcase(upper, pattern) for pattern in DENIED_ENV):
            return f"{name} may not be set by a manifest: it changes what a replica loads or runs"
        return None

    def _replica_problems(self, scaling: Scaling, at: Loc) -> Iterator[Problem]:
        for field, value in (("minReplicas", scaling.min_replicas), ("maxReplicas", scaling.max_replicas)):
            if value > self.max_replicas_per_revision:
                yield (*at, field), self._too_many_replicas()

    def _annotation_problems(self, annotations: Mapping[str, str]) -> Iterator[Problem]:
        for setting in (KNATIVE_SETTINGS[name] for name in _SCALE_SETTINGS):
            for key in (KNATIVE_PREFIX + name for name in setting.annotations):
                if key in annotations and _number(annotations[key]) > self.max_replicas_per_revision:
                    yield ("metadata", "annotations", key), self._too_many_replicas()

    def _too_many_replicas(self) -> str:
        cap, setting = self.max_replicas_per_revision, self.setting("max_replicas_per_revision")
        return f"this Wharf runs at most {cap} replicas of a revision ({setting})"


def _argument_problems(args: Sequence[str], at: Loc, allowed: Sequence[str]) -> Iterator[Problem]:
    value_next = False
    for i, arg in enumerate(args):
        if value_next:
            value_next = False
            continue
        option, equals, _ = arg.partition("=")
        if option in allowed:
            value_next = not equals
            continue
        yield (
            (*at, i),
            f"{arg!r}: Wharf writes a replica's command line; args may give only {', '.join(allowed)}",
        )


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0  # the autoscaler's own reading refuses it


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _listed(roots: Sequence[Path]) -> str:
    return ", ".join(map(str, roots)) or "none"
