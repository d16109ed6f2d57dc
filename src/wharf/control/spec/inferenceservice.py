"""KServe's `serving.kserve.io/v1beta1` InferenceService, as a local Wharf runs it.

A predictor names its model either as `model` (`modelFormat`, `storageUri`, ...) or with a framework shorthand
(`sklearn:`, `xgboost:`, `lightgbm:`, `onnx:`, `pytorch:`, `tensorflow:`, `huggingface:`). Parsing turns a
shorthand into `model` with that format, as KServe's defaulting webhook does, so that everything after parsing
has one code path: `PredictorSpec.model_spec()`. As in KServe, the onnx and huggingface shorthands default to
protocol v2, and everything else to v1.

A predictor that names a model format (not huggingface) and no `storageUri` is a multi-model server, as KServe's
IsMMSPredictor judges it: its replicas start with no model, and TrainedModels (`trainedmodel.py`) name the models
they serve.

Custom images (`containers`, `image`) cannot run without a container runtime, so a predictor refuses them.
Wharf's extension for a model written in Python is the model format `custom`, whose `storageUri` names the class
(a `wharf.Model` subclass) as `package.module:ClassName` - the same reference `wharf serve` takes:

    model:
      modelFormat: {name: custom}
      storageUri: fraud.models:FraudModel

The class loads its own artifacts (give their location with `env`); `env` may also set PYTHONPATH, within what
`wharf.control.policy` allows. A transformer or an explainer is accepted as KServe writes it (one container image,
kept for a backend that can run images) or as such a custom class; a local Wharf runs a transformer's class (a
`wharf.Transformer`). Where a pod is placed, its identity, security context and labels (`nodeSelector`,
`serviceAccountName`, ... on a component; `imagePullPolicy`, `securityContext` on a model) are accepted and have no
effect: `ignored` names them in warnings.

Defaults are KServe's and Knative's: minReplicas 1, maxReplicas 0 (no bound of its own), scaleMetric
concurrency, containerConcurrency 0 (no limit), timeout 300 s, no canary (the latest ready revision takes all
traffic), batcher maxBatchSize 32, maxLatency 5000 ms and timeout 60 s (the KServe agent's defaults), logger mode
`all`. The model served is named after the InferenceService (KServe has no field to change it).

A revision is what one replica runs. `revision_template(component)` is the component's spec with its defaults
filled in, less the fields that only steer traffic and scaling (canaryTrafficPercent, minReplicas, maxReplicas,
scaleTarget, scaleMetric); `component_fingerprint` hashes it. Knative keeps scale bounds in the revision template
(as annotations), so changing them there creates a revision, and with a canary, a rollout; Wharf applies them to
the existing revisions instead, so that rescaling never restarts a model. Everything else (the model, its
environment and resources, batcher, logger, containerConcurrency, timeout) makes a new revision, as in Knative,
except the fields a local replica ignores.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from wharf.control.spec.common import (
    DEFAULT_TIMEOUT_S,
    EnvVar,
    HttpUrl,
    Problem,
    Resources,
    RolloutPolicy,
    Scaling,
    SpecModel,
    TopLevelResource,
)
from wharf.control.spec import huggingface
from wharf.control.spec.explainer import TREE_FORMATS, ARTExplainerSpec, SHAPExplainerSpec
from wharf.control.spec.ignored import ContainerSettings, PodSettings, ignored_exclude
from wharf.model.runtimes import RUNTIMES
from wharf.model.runtimes.custom import names_class
from wharf.storage.stores import STORES
from wharf.storage.uri import LOCAL_SCHEMES, scheme

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"

ProtocolVersion = Literal["v1", "v2", "grpc-v2"]

CUSTOM_FORMAT = "custom"
#: The model formats Wharf serves: its framework runtimes, and custom Python classes.
MODEL_FORMATS = (*RUNTIMES, CUSTOM_FORMAT)
#: The predictor's framework shorthands (each one a model format).
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "huggingface")
_V2_BY_DEFAULT = frozenset({"onnx", "huggingface"})
#: KServe's built-in ClusterServingRuntimes: `runtime` may name one; Wharf serves the format with its own runtime.
KSERVE_RUNTIMES = frozenset(
    {
        "kserve-sklearnserver", "kserve-xgbserver", "kserve-lgbserver", "kserve-mlserver", "kserve-tritonserver",
        "kserve-torchserve", "kserve-tensorflow-serving", "kserve-huggingfaceserver", "kserve-paddleserver",
        "kserve-pmmlserver",
    }
)  # fmt: skip
#: Component fields that steer traffic and scaling: changing them makes no new revision.
NOT_IN_REVISION = frozenset({"canary_traffic_percent", "min_replicas", "max_replicas", "scale_target", "scale_metric"})

_SCHEMES = ", ".join(["paths", *(f"{s}://" for s in (*LOCAL_SCHEMES, *STORES) if s)])
_CONTROL = re.compile(r"[\x01-\x1f\x7f]")


# -- the model ---------------------------------------------------------------------------------------------------


class ModelFormat(SpecModel):
    name: str
    version: str | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value.lower() not in MODEL_FORMATS:
            raise ValueError(f"unknown model format {value!r}; Wharf serves {', '.join(MODEL_FORMATS)}")
        return value.lower()


class PredictorExtension(ContainerSettings):
    """What every way of naming a predictor's model shares (KServe's PredictorExtensionSpec, less the container).

    `args` are extra command-line arguments of the model server (the policy allows its batching options), `env`
    its environment. `runtimeVersion` (an image tag in KServe) is kept but changes nothing: Wharf runs the framework
    version that is installed. `name` is the container's in KServe (its SDK always sends one, if only empty); a
    local replica runs no container, so it names nothing.
    """

    name: str | None = None
    storage_uri: str | None = None
    runtime_version: str | None = None
    protocol_version: ProtocolVersion | None = None
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)


def _storage_problems(uri: str | None) -> Iterator[Problem]:
    """What is wrong with a model's storageUri. A URI reads the same to this spec, the policy and the stores (which
    find a scheme only before `://`, in lower case): so a scheme is written `scheme://` in lower case at the start,
    a path holds no `://`, and neither holds a control character (URL parsing drops tabs and line breaks) or
    begins with `-`."""
    found = scheme(uri or "")
    if not uri:
        yield ("storageUri",), "required: Wharf loads a model from its artifacts (a path or a URI)"
    elif "\x00" in uri:
        yield ("storageUri",), "must not contain a NUL character"
    elif control := _CONTROL.search(uri):
        yield ("storageUri",), f"must not contain a control character ({control.group()!r})"
    elif uri.startswith("-"):  # a command line would read it as an option
        yield ("storageUri",), f"must not begin with '-' (a file of that name is ./{uri})"
    elif names_class(uri):  # a Python class (`s3:Model` too: the model server imports module s3): custom code
        pass
    elif found not in LOCAL_SCHEMES and found not in STORES:
        yield ("storageUri",), f"unsupported storage scheme {found}://; Wharf reads {_SCHEMES}"
    elif found and not uri.startswith(f"{found}://"):
        yield ("storageUri",), f"write the scheme as {found}://, in lower case, at the start (Wharf reads {_SCHEMES})"
    elif not found and "://" in uri:
        yield ("storageUri",), f"a path holds no :// (a URI begins with its scheme: {_SCHEMES})"


class FrameworkSpec(PredictorExtension):
    """A framework shorthand such as `sklearn:`; parsing makes it a ModelSpec of that format."""

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.storage_uri is not None:  # none: a multi-model server (ModelSpec.is_multi_model)
            yield from _storage_problems(self.storage_uri)


class ModelSpec(PredictorExtension):
    """The model a component serves: its format and where it is (for `custom`, its class)."""

    model_format: ModelFormat
    runtime: str | None = None
    protocol_version: ProtocolVersion = "v1"

    @property
    def is_custom(self) -> bool:
        return self.model_format.name == CUSTOM_FORMAT

    @property
    def names_class(self) -> bool:
        """Whether a replica runs a Python class: a custom model, or any storageUri that the model server reads as
        one (`module:Class`, whatever the format: `s3:Model` imports module s3)."""
        return self.is_custom or names_class(self.storage_uri or "")

    @property
    def is_multi_model(self) -> bool:
        """Whether it is a multi-model server, as KServe's IsMMSPredictor judges it: a format (not huggingface,
        not custom) without a storageUri. TrainedModels name the models it serves."""
        return self.storage_uri is None and self.model_format.name not in (CUSTOM_FORMAT, "huggingface")

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.is_custom and not names_class(self.storage_uri or ""):
            yield ("storageUri",), "a custom model names its class here, as package.module:ClassName"
        elif not self.is_custom and not self.is_multi_model:
            yield from _storage_problems(self.storage_uri)
        if self.model_format.name == huggingface.FORMAT:
            yield from huggingface.argument_problems(self.args)
        if self.runtime is not None and self.runtime not in KSERVE_RUNTIMES:
            yield (
                ("runtime",),
                (
                    f"unknown serving runtime {self.runtime!r}: Wharf has no ServingRuntime resources and serves each"
                    " model format with its own runtime; leave runtime out (or name a KServe built-in one)"
                ),
            )


# -- components --------------------------------------------------------------------------------------------------


class Batcher(SpecModel):
    """Merge concurrent requests into one predict call (the model server's max_batch_size and
    max_batch_latency_ms settings): up to `maxBatchSize` requests, waiting at most `maxLatency` milliseconds for a
    batch to fill; a batch's `timeout` is in seconds."""

    max_batch_size: int = Field(32, ge=1)
    max_latency: int = Field(5000, ge=0)
    timeout: int = Field(60, ge=1)


class LoggerSpec(SpecModel):
    """Payload logging: CloudEvents of requests, responses or both, sent to `url` (KServe's default, a Knative
    broker, does not exist here: a local Wharf needs `url`), with the request headers `metadataHeaders` names."""

    mode: Literal["all", "request", "response"] = "all"
    url: HttpUrl | None = None
    metadata_headers: list[str] = []

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.url is None:
            yield (
                ("url",),
                "required: a local Wharf has no default sink for payload logs (KServe's is a Knative broker); give"
                " the http(s) URL that receives the CloudEvents",
            )


class ComponentExtension(Scaling, PodSettings):
    """What every component (predictor, transformer, explainer) shares: KServe's ComponentExtensionSpec.

    `containerConcurrency` is the hard limit of requests in flight per replica (0: none); `timeout` is a request's
    deadline in seconds; `canaryTrafficPercent` is the share of traffic the latest revision takes while the
    previously rolled-out one keeps the rest (unset: the latest ready revision takes everything).
    """

    container_concurrency: int = Field(0, ge=0)
    timeout: int = Field(DEFAULT_TIMEOUT_S, ge=1)
    canary_traffic_percent: int | None = Field(None, ge=0, le=100)
    logger: LoggerSpec | None = None
    batcher: Batcher | None = None


class PredictorSpec(ComponentExtension):
    """The predictor: exactly one of `model` or a framework shorthand (which parsing turns into `model`)."""

    model: ModelSpec | None = None
    sklearn: FrameworkSpec | None = None
    xgboost: FrameworkSpec | None = None
    lightgbm: FrameworkSpec | None = None
    onnx: FrameworkSpec | None = None
    pytorch: FrameworkSpec | None = None
    tensorflow: FrameworkSpec | None = None
    huggingface: FrameworkSpec | None = None

    def model_spec(self) -> ModelSpec:
        """The predictor's model, however the manifest named it."""
        if self.model is None:
            raise ValueError("the predictor has no model; build PredictorSpec by validating it")
        return self.model

    def _given(self) -> list[str]:
        return [name for name in ("model", *FRAMEWORKS) if getattr(self, name) is not None]

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        given = self._given()
        if len(given) != 1:
            found = f"given: {', '.join(given)}" if given else "none given"
            yield (), f"needs exactly one of model, {', '.join(FRAMEWORKS)} ({found})"

    @model_validator(mode="after")
    def _shorthand_to_model(self) -> Self:
        given = self._given()
        if len(given) == 1 and given[0] != "model":
            framework = given[0]
            model = getattr(self, framework).model_dump(exclude_none=True)
            model["modelFormat"] = {"name": framework}
            model.setdefault("protocolVersion", "v2" if framework in _V2_BY_DEFAULT else "v1")
            self.model = ModelSpec.model_validate(model)
            setattr(self, framework, None)
        return self


class Container(ContainerSettings):
    """A container of a transformer or explainer, as KServe writes it."""

    name: str = "kserve-container"
    image: str
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)


class CustomComponentSpec(ComponentExtension):
    """A transformer or an explainer: one container image (KServe's way, kept for a backend that runs images) or
    a custom Python class (`model` with modelFormat `custom`)."""

    containers: list[Container] | None = None
    model: ModelSpec | None = None

    #: The ways of giving the component, of which a manifest gives exactly one.
    _ways: ClassVar[tuple[str, ...]] = ("containers", "model")

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        given = [way for way in self._ways if getattr(self, way) is not None]
        if len(given) != 1:
            found = f"given: {', '.join(given)}" if given else "none given"
            ways = f"{', '.join(self._ways[:-1])} or {self._ways[-1]}"
            yield (), f"needs exactly one of {ways} (model: a custom Python class; {found})"
        if self.containers is not None and len(self.containers) != 1:
            yield ("containers",), "give exactly one container"
        if self.model is not None and not self.model.is_custom:
            yield (
                ("model", "modelFormat", "name"),
                (
                    "must be custom: a transformer or explainer is a Python class, named in storageUri"
                    " as package.module:ClassName"
                ),
            )


class ExplainerSpec(CustomComponentSpec):
    """An explainer: KServe's `art`, Wharf's `shap` (`wharf.control.spec.explainer`), or a custom one."""

    art: ARTExplainerSpec | None = None
    shap: SHAPExplainerSpec | None = None

    _ways: ClassVar[tuple[str, ...]] = ("art", "shap", "containers", "model")

    @property
    def method(self) -> ARTExplainerSpec | SHAPExplainerSpec | None:
        """The built-in explanation method it names, if any."""
        return self.art or self.shap


ComponentSpec = PredictorSpec | CustomComponentSpec | ExplainerSpec


# -- the InferenceService ----------------------------------------------------------------------------------------


class InferenceServiceSpec(SpecModel):
    predictor: PredictorSpec
    transformer: CustomComponentSpec | None = None
    explainer: ExplainerSpec | None = None

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        explainer = self.explainer
        if explainer is not None and explainer.art is not None and explainer.art.storage_uri is not None:
            yield (
                ("explainer", "art", "storageUri"),
                "Wharf's ART explainer attacks the predictor itself and loads no artifact: leave storageUri out",
            )
        shap = explainer.shap if explainer is not None else None
        if shap is None:
            return
        for loc, reason in _storage_problems(shap.storage_uri) if shap.storage_uri else ():
            yield ("explainer", "shap", *loc), reason
        model = self.predictor.model_spec() if self.predictor.model is not None else None
        tree = model is not None and not model.names_class and model.model_format.name in TREE_FORMATS
        at = ("explainer", "shap")
        if shap.type == "Tree" and not tree:
            yield (
                (*at, "type"),
                f"Tree explanations read the predictor's artifact: they need a predictor of format"
                f" {', '.join(TREE_FORMATS)} (use Kernel, with background rows in storageUri)",
            )
        if shap.type == "Auto" and not tree and not shap.storage_uri:
            yield (
                (*at, "storageUri"),
                "required here: this predictor is explained by Kernel SHAP, which needs background rows",
            )


class InferenceService(TopLevelResource):
    api_version: Literal["serving.kserve.io/v1beta1"]
    kind: Literal["InferenceService"]
    spec: InferenceServiceSpec

    @property
    def model_name(self) -> str:
        """The name the predictor's model is served under: the InferenceService's, or the `--model_name` a
        Hugging Face model's args give (control/spec/huggingface.py)."""
        model = self.spec.predictor.model
        named = huggingface.served_name(model.args) if model and model.model_format.name == huggingface.FORMAT else None
        return named or self.metadata.name

    @property
    def rollout_policy(self) -> RolloutPolicy:
        return self.metadata.rollout_policy

    def components(self) -> dict[str, ComponentSpec]:
        """The components given, by name: predictor, then transformer and explainer when present."""
        spec = self.spec
        named = {"predictor": spec.predictor, "transformer": spec.transformer, "explainer": spec.explainer}
        return {name: component for name, component in named.items() if component is not None}

    def to_manifest(self) -> dict[str, Any]:
        """The manifest with every default filled in (and shorthands as `model`), in KServe's field names."""
        return self.model_dump(mode="json", exclude_none=True)


def revision_template(component: ComponentSpec) -> dict[str, Any]:
    """What a revision of `component` runs: its spec, defaults filled in, less the traffic and scaling fields and
    the fields a local replica ignores (`ignored`)."""
    return component.model_dump(mode="json", exclude_none=True, exclude=_not_in_revision(type(component)))


def _not_in_revision(component: type[ComponentSpec]) -> dict[str, Any]:
    exclude: dict[str, Any] = dict.fromkeys(NOT_IN_REVISION | ignored_exclude(component), True)
    exclude["model"] = dict.fromkeys(ignored_exclude(ModelSpec), True)
    if issubclass(component, CustomComponentSpec):
        exclude["containers"] = {"__all__": dict.fromkeys(ignored_exclude(Container), True)}
    if component is ExplainerSpec:
        exclude["art"] = dict.fromkeys(ignored_exclude(ARTExplainerSpec), True)
        exclude["shap"] = dict.fromkeys(ignored_exclude(SHAPExplainerSpec), True)
    return exclude


def component_fingerprint(component: ComponentSpec) -> str:
    """A stable hash of `revision_template(component)`: equal exactly when a new revision is not needed."""
    canonical = json.dumps(revision_template(component), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
