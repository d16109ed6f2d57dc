"""What the KServe-compatible specs share: the base model, problems and `SpecError`, object metadata with
Wharf's own annotations, resources, environment variables and replica scaling.

Every spec model forbids unknown fields, takes KServe's camelCase names on the wire (Python attributes are
snake_case) and fills in defaults when parsed. A problem names the field path and the reason, e.g.
`spec.predictor.minReplicas: must be <= maxReplicas (2)`.

Wharf's annotations (on `metadata.annotations`, prefix `serving.wharf.dev/`) set how a new revision rolls out:

- `serving.wharf.dev/shadow-percent` (a whole percentage, 0 to 100, default 0): while a rollout is in progress
  (the latest created revision is not yet the rolled-out one, i.e. `canaryTrafficPercent` is below 100), that
  share of the requests routed to the rolled-out revision is also sent, as a copy, to the latest created
  revision. Clients always get the answer of the revision their request was routed to; the copy's answer is
  only measured. With no rollout in progress there is nothing to mirror.
- `serving.wharf.dev/auto-rollback-error-rate` (a fraction, 0 to 1) and `serving.wharf.dev/auto-rollback-p99-ms`
  (milliseconds, > 0): during a rollout, when the latest revision's share of failed (5xx) requests, or its 99th
  percentile latency, exceeds the threshold over the gateway's statistics window (`WHARF_GATEWAY_STATS_WINDOW_S`,
  default 60 s, Knative's stable window), Wharf takes it out of traffic (a rollback). The window is the gateway's,
  one for every service: `serving.wharf.dev/auto-rollback-window-s` is refused rather than ignored.

- `serving.wharf.dev/rollout` (`canary`, the default, or `bandit`): with `bandit`, while a component has a canary
  (`canaryTrafficPercent` with a new revision), the latest revision's share follows a bandit between it and the
  revision rolled out before, fed by the rewards clients post to the service's `/feedback` for the revision that
  answered (`x-wharf-arm`): it starts at `canaryTrafficPercent`, then gets the posterior chance that it is the
  better, and is promoted, or rolled back, once that chance is at least `serving.wharf.dev/bandit-confidence` (a
  fraction above 0.5 and below 1, default 0.95), or at most 1 minus it. Rewards are 0 to 1. Nothing is decided
  before each revision has `serving.wharf.dev/bandit-min-rewards` rewards (a whole number >= 1, default 20).
  Either setting without `rollout: bandit` is refused. (`wharf.bandit.rollout` states the rules.)

- `serving.wharf.dev/api-key-sha256` (SHA-256 digests, hexadecimal, comma-separated): the gateway answers the
  service only to requests that carry one of the keys with these digests, as `Authorization: Bearer KEY` or
  `x-api-key: KEY` (gRPC: the same metadata); others get 401. `wharf apikey` makes a key and its digest. Only
  digests are stored, so a manifest or a `wharf get` shows no key.

An unknown `serving.wharf.dev/` annotation is an error (most likely a typo). Other annotations, such as Knative's
`autoscaling.knative.dev/*`, are kept as plain strings for the components that read them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from wharf.errors import ConfigurationError
from wharf.model.runtimes import RUNTIMES

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]  # (path relative to the model that found it, reason)

#: A request's deadline when a component or graph sets no `timeout` (Knative's revision-timeout-seconds).
DEFAULT_TIMEOUT_S = 300

WHARF_PREFIX = "serving.wharf.dev/"
SHADOW_PERCENT = WHARF_PREFIX + "shadow-percent"
AUTO_ROLLBACK_ERROR_RATE = WHARF_PREFIX + "auto-rollback-error-rate"
AUTO_ROLLBACK_P99_MS = WHARF_PREFIX + "auto-rollback-p99-ms"
API_KEY_SHA256 = WHARF_PREFIX + "api-key-sha256"
ROLLOUT = WHARF_PREFIX + "rollout"
BANDIT_CONFIDENCE = WHARF_PREFIX + "bandit-confidence"
BANDIT_MIN_REWARDS = WHARF_PREFIX + "bandit-min-rewards"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

GPU = "nvidia.com/gpu"
RESOURCE_NAMES = ("cpu", "memory", GPU)


# -- problems ----------------------------------------------------------------------------------------------------


#: A refusal names at most this many problems, then says how many more there are (a manifest with a million
#: mistakes answers as fast, and as short, as one with twenty).
MAX_REPORTED = 20


class SpecError(ConfigurationError):
    """A manifest is invalid; `problems` lists (field path, reason) of the first `MAX_REPORTED` problems found,
    `omitted` counts those left out (`omitted` given: found, but not listed, by whoever raises)."""

    def __init__(self, problems: Sequence[tuple[str, str]], omitted: int = 0) -> None:
        self.problems = list(problems[:MAX_REPORTED])
        self.omitted = omitted + len(problems) - len(self.problems)
        lines = [f"{path}: {reason}" if path else reason for path, reason in self.problems]
        if self.omitted:
            lines.append(f"... and {self.omitted} more")
        total = len(self.problems) + self.omitted
        super().__init__(lines[0] if total == 1 else f"{total} problems:\n  " + "\n  ".join(lines))


def format_path(loc: Iterable[str | int]) -> str:
    """`("spec", "nodes", "root", "steps", 0)` as `spec.nodes.root.steps[0]`; odd keys as `["nvidia.com/gpu"]`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", part):
            path += f".{part}" if path else part
        else:
            path += f'["{part}"]'
    return path


def invalid(problems: Sequence[Problem]) -> PydanticCustomError:
    """The error a validator raises for `problems` (paths relative to what it validates)."""
    summary = "; ".join(f"{format_path(loc) or '(here)'}: {reason}" for loc, reason in problems)
    return PydanticCustomError("wharf_spec", "{summary}", {"summary": summary, "problems": list(problems)})


def problems_of(error: ValidationError) -> tuple[list[tuple[str, str]], int]:
    """A pydantic error as (field path, reason) pairs, worded for someone who wrote YAML: the first
    `MAX_REPORTED`, and how many more there are (only those listed are worded)."""
    found: list[tuple[str, str]] = []
    total = 0
    for e in error.errors(include_url=False, include_input=False):
        loc = tuple(e["loc"])
        if e["type"] == "wharf_spec":
            problems = e["ctx"]["problems"]
            total += len(problems)
            found += [(format_path(loc + sub), reason) for sub, reason in problems[: MAX_REPORTED - len(found)]]
        else:
            total += 1
            if len(found) < MAX_REPORTED:
                found.append((format_path(loc), _reason(e, loc)))
    return found, total - len(found)


_REASONS = {
    "missing": "required",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "literal_error": "must be {expected}",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "too_short": "must have at least {min_length} item(s)",
}


def _reason(error: Any, loc: Loc) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error":
        return str(ctx["error"])
    if error["type"] == "extra_forbidden":
        return _unknown_field(loc)
    template = _REASONS.get(error["type"])
    return template.format(**ctx) if template else error["msg"]


_POD = "is a Kubernetes pod setting that a local Wharf cannot honour"
_IMAGE = (
    "container images cannot run on a local Wharf; write the model as a Python class (a wharf.Model subclass) and"
    " name it as model: {modelFormat: {name: custom}, storageUri: 'package.module:ClassName'}"
)
_NO_RUNTIME = f"Wharf has no runtime for this framework; it serves {', '.join(RUNTIMES)} and custom Python models"
_HPA = "is for Kubernetes' HPA or KEDA; a local Wharf scales with minReplicas, maxReplicas, scaleTarget, scaleMetric"
_LOGGER = "is not supported by Wharf's payload logger (it sends CloudEvents to logger.url)"
_SERVER_SET = "is set by the server; remove it from the manifest"

#: Why a KServe (or Kubernetes) field that Wharf does not take is refused; a key "parent.field" wins over "field".
UNSUPPORTED: dict[str, str] = {
    **dict.fromkeys(
        (
            "volumes",
            "volumeMounts",
            "initContainers",
            "hostNetwork",
            "hostIPC",
            "hostPID",
            "dnsPolicy",
            "dnsConfig",
            "runtimeClassName",
            "terminationGracePeriodSeconds",
            "readinessProbe",
            "livenessProbe",
            "startupProbe",
            "ports",
            "workingDir",
            "envFrom",
            "lifecycle",
        ),
        _POD,
    ),
    **dict.fromkeys(("containers", "image"), _IMAGE),
    **dict.fromkeys(("triton", "pmml", "paddle", "art", "alibi"), _NO_RUNTIME),
    **dict.fromkeys(("autoScaling", "scaleMetricType"), _HPA),
    **dict.fromkeys(
        (
            "logger.storage",
            "logger.batchSize",
            "logger.batchInterval",
            "logger.marshallerUrl",
            "logger.metadataAnnotations",
        ),
        _LOGGER,
    ),
    **dict.fromkeys(
        (
            "status",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "finalizers",
            "ownerReferences",
            "deletionTimestamp",
        ),
        _SERVER_SET,
    ),
    "command": "Wharf starts its own model server; pass extra arguments with args",
    "valueFrom": "values from Kubernetes secrets or config maps are not supported; give value",
    "storage": "storage specs are not supported; give the model's location as storageUri",
    "storageUris": "several storage locations are not supported; give one storageUri",
    "workerSpec": "multi-node serving is not supported on one machine",
    "deploymentStrategy": "Wharf rolls out a new revision with canaryTrafficPercent and serving.wharf.dev/ annotations",
    "annotations": "set annotations on the resource's metadata",
    "canary": "give canaryTrafficPercent on the component",
    "tracing": "is not supported yet",
    "routerTimeouts": "set the graph's timeout instead",
    "generateName": "give metadata.name",
}


def _unknown_field(loc: Loc) -> str:
    key = str(loc[-1])
    parent = str(loc[-2]) if len(loc) > 1 else ""
    reason = UNSUPPORTED.get(f"{parent}.{key}") or UNSUPPORTED.get(key)
    if reason:
        return reason
    close = difflib.get_close_matches(key, _field_names(), n=1, cutoff=0.8)
    if not close:
        return "unknown field"
    if close[0] == key:  # a real field, in the wrong place
        return "not a field here (it is one elsewhere in the spec: check its indentation)"
    return f"unknown field; did you mean {close[0]}?"


@cache
def _field_names() -> list[str]:
    """The wire names of every spec model's fields."""
    names, pending = set(), [SpecModel]
    while pending:
        model = pending.pop()
        names |= {f.alias or name for name, f in model.model_fields.items()}
        pending += model.__subclasses__()
    return sorted(names)


# -- the base model ----------------------------------------------------------------------------------------------


class SpecModel(BaseModel):
    """A KServe spec object: camelCase on the wire, unknown fields refused, defaults filled in.

    A subclass adds checks across its fields by overriding `_problems` (and yielding from `super()._problems()`).
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        coerce_numbers_to_str=True,  # YAML's `version: 1` or `value: 8080`, where Kubernetes wants strings
    )

    def _problems(self) -> Iterator[Problem]:
        return iter(())

    @model_validator(mode="after")
    def _check(self) -> Self:
        found = list(self._problems())
        if found:
            raise invalid(found)
        return self


M = TypeVar("M", bound=SpecModel)


def validate(model: type[M], data: Any) -> M:
    """`data` (from YAML or JSON, camelCase names only) as `model`; raises SpecError."""
    try:
        return model.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as e:
        raise SpecError(*problems_of(e)) from None


# -- names -------------------------------------------------------------------------------------------------------

_RESOURCE_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_resource_name(value: str) -> str:
    """An InferenceService's or InferenceGraph's name: a DNS-1123 label that starts with a letter (as in KServe)."""
    if len(value) > 63 or not _RESOURCE_NAME.fullmatch(value):
        raise ValueError(
            "must be lower-case letters, digits and '-', start with a letter, end with a letter or digit and be at"
            " most 63 characters (e.g. sklearn-iris)"
        )
    return value


def _check_namespace(value: str) -> str:
    if len(value) > 63 or not _NAMESPACE.fullmatch(value):
        raise ValueError("must be lower-case letters, digits and '-' (a DNS-1123 label, at most 63 characters)")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


ResourceName = Annotated[str, AfterValidator(check_resource_name)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


# -- metadata and Wharf's annotations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """How a new revision rolls out, from the `serving.wharf.dev/` annotations (see the module's docstring)."""

    shadow_percent: int = 0
    rollback_error_rate: float | None = None
    rollback_p99_ms: float | None = None
    rollout: Literal["canary", "bandit"] = "canary"
    bandit_confidence: float = 0.95
    bandit_min_rewards: int = 20

    @property
    def auto_rollback(self) -> bool:
        return self.rollback_error_rate is not None or self.rollback_p99_ms is not None

    @property
    def bandit(self) -> bool:
        """Whether a canary's share follows a bandit (`serving.wharf.dev/rollout: bandit`)."""
        return self.rollout == "bandit"


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise ValueError("must be a whole percentage from 0 to 100")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ValueError("must be a fraction from 0 to 1 (e.g. 0.05 for 5% of requests failing)")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("must be a positive number")
    return value


def _rollout_mode(text: str) -> str:
    if text not in ("canary", "bandit"):
        raise ValueError("must be canary (the spec's canaryTrafficPercent) or bandit (a share that follows rewards)")
    return text


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.5 < value < 1:
        raise ValueError("must be a fraction above 0.5 and below 1 (e.g. 0.95)")
    return value


def _whole_positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


_WHARF_ANNOTATIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    SHADOW_PERCENT: ("shadow_percent", _percent),
    AUTO_ROLLBACK_ERROR_RATE: ("rollback_error_rate", _fraction),
    AUTO_ROLLBACK_P99_MS: ("rollback_p99_ms", _positive),
    ROLLOUT: ("rollout", _rollout_mode),
    BANDIT_CONFIDENCE: ("bandit_confidence", _confidence),
    BANDIT_MIN_REWARDS: ("bandit_min_rewards", _whole_positive),
}
_BANDIT_SETTINGS = (BANDIT_CONFIDENCE, BANDIT_MIN_REWARDS)
_NOT_SUPPORTED = {
    WHARF_PREFIX + "auto-rollback-window-s": "not supported: a canary is judged over the gateway's statistics window,"
    " one for every service (WHARF_GATEWAY_STATS_WINDOW_S, default 60 s)",
}


def api_key_digests(annotations: Mapping[str, str]) -> frozenset[str]:
    """The SHA-256 digests (lower-case hexadecimal) of the keys a service asks for; empty: no key needed."""
    text = annotations.get(API_KEY_SHA256)
    if text is None:
        return frozenset()
    digests = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    wrong = [d for d in digests if not _SHA256_HEX.fullmatch(d)]
    if wrong or not digests:
        raise ValueError(
            "must list SHA-256 digests of the keys, 64 hexadecimal digits each, comma-separated (`wharf apikey`"
            " makes a key and its digest)" + (f"; not a digest: {wrong[0][:70]!r}" if wrong else "")
        )
    return digests


def _read_rollout_policy(annotations: Mapping[str, str]) -> tuple[RolloutPolicy, list[Problem]]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, text in annotations.items():
        if not key.startswith(WHARF_PREFIX):
            continue
        if key == API_KEY_SHA256:
            try:
                api_key_digests(annotations)
            except ValueError as e:
                problems.append(((key,), str(e)))
            continue
        if key in _NOT_SUPPORTED:
            problems.append(((key,), _NOT_SUPPORTED[key]))
            continue
        if key not in _WHARF_ANNOTATIONS:
            known = ", ".join([*_WHARF_ANNOTATIONS, API_KEY_SHA256])
            problems.append(((key,), f"unknown Wharf annotation; known: {known}"))
            continue
        attribute, read = _WHARF_ANNOTATIONS[key]
        try:
            values[attribute] = read(text)
        except ValueError as e:
            problems.append(((key,), str(e)))
    if values.get("rollout") != "bandit":
        read = [key for key in _BANDIT_SETTINGS if _WHARF_ANNOTATIONS[key][0] in values]
        problems += [((key,), f"only with {ROLLOUT}: bandit") for key in read]
    return RolloutPolicy(**values), problems


class ObjectMeta(SpecModel):
    """The part of Kubernetes' object metadata that a manifest gives."""

    name: ResourceName
    namespace: Annotated[str, AfterValidator(_check_namespace)] = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def rollout_policy(self) -> RolloutPolicy:
        return _read_rollout_policy(self.annotations)[0]

    @field_validator("annotations")
    @classmethod
    def _wharf_annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        problems = _read_rollout_policy(annotations)[1]
        if problems:
            raise invalid(problems)
        return annotations


# -- resources and environment -----------------------------------------------------------------------------------

_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|([KMGTPE]i|[numkMGTPE]))?")
_SCALE = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity as a number: cpu in cores (`500m` is 0.5), memory in bytes (`1Gi` is 2**30)."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a quantity (e.g. 500m, 2, 4Gi)")
    number, exponent, suffix = match.groups()
    return float(number + (exponent or "")) * _SCALE.get(suffix or "", 1.0)


def _quantities(value: Any) -> Any:
    """A requests or limits mapping, checked: known resource names, quantities, whole GPUs."""
    if not isinstance(value, Mapping):
        return value  # pydantic says what it should be
    checked: dict[str, str] = {}
    problems: list[Problem] = []
    for name, amount in value.items():
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            amount = str(amount)
        if name not in RESOURCE_NAMES:
            problems.append(((name,), f"unknown resource; Wharf knows {', '.join(RESOURCE_NAMES)}"))
            continue
        if not isinstance(amount, str):
            problems.append(((name,), "must be a quantity (e.g. 500m, 2, 4Gi)"))
            continue
        try:
            number = parse_quantity(amount)
        except ValueError as e:
            problems.append(((name,), str(e)))
            continue
        if name == GPU and not number.is_integer():
            problems.append(((name,), "must be a whole number of GPUs"))
        checked[name] = amount
    if problems:
        raise invalid(problems)
    return checked


Quantities = Annotated[dict[str, str], BeforeValidator(_quantities)]


class TopLevelResource(SpecModel):
    """What every applied document has: its metadata, and the name and namespace it gives."""

    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


class Resources(SpecModel):
    """Compute resources: `requests` and `limits` of cpu, memory and nvidia.com/gpu (Kubernetes quantities)."""

    requests: Quantities = Field(default_factory=dict)
    limits: Quantities = Field(default_factory=dict)

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        for name in sorted(self.requests.keys() & self.limits.keys()):
            if parse_quantity(self.requests[name]) > parse_quantity(self.limits[name]):
                yield ("requests", name), f"must not exceed the limit ({self.limits[name]})"


class EnvVar(SpecModel):
    """An environment variable of the component's processes."""

    name: str
    value: str = ""

    @field_validator("name")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", value):
            raise ValueError("must be letters, digits, '_', '-' or '.', and not start with a digit")
        return value

    @field_validator("value")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character (a process's environment cannot hold one)")
        return value


# -- scaling -----------------------------------------------------------------------------------------------------

ScaleMetric = Literal["concurrency", "rps", "cpu", "memory"]


class Scaling(SpecModel):
    """Replica bounds and the autoscaling target (KServe's names; Knative's defaults).

    `minReplicas` defaults to 1; 0 lets the component scale to zero. `maxReplicas` 0 (the default) sets no upper
    bound of its own: as in KServe, where it then leaves Knative's max-scale unset (unlimited), the platform's
    own limit applies. `scaleTarget` unset means Knative's default target for the metric: 100 concurrent
    requests per replica, or 200 requests per second for `rps`. cpu and memory metrics need Kubernetes' HPA.
    """

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(0, ge=0)
    scale_target: int | None = Field(None, ge=1)
    scale_metric: ScaleMetric = "concurrency"

    @field_validator("scale_metric")
    @classmethod
    def _local_metric(cls, value: str) -> str:
        if value in ("cpu", "memory"):
            raise ValueError(
                f"scaling on {value} needs Kubernetes (KServe's HPA); a local Wharf scales on concurrency or rps"
            )
        return value

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.max_replicas and self.min_replicas > self.max_replicas:
            yield ("minReplicas",), f"must be <= maxReplicas ({self.max_replicas})"
