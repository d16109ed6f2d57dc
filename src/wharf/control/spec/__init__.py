"""The specs Wharf applies: KServe's InferenceService (v1beta1) and InferenceGraph (v1alpha1), with their
validation and defaults. Read a file with `parse_manifests`, a decoded document with `parse_manifest`; both raise
`SpecError`, whose `problems` name each field path and what is wrong with it. `local_warnings` names the fields a
manifest may carry that have no effect on a local replica.
"""

from wharf.control.spec.common import (
    AUTO_ROLLBACK_ERROR_RATE,
    AUTO_ROLLBACK_P99_MS,
    DEFAULT_TIMEOUT_S,
    SHADOW_PERCENT,
    WHARF_PREFIX,
    EnvVar,
    ObjectMeta,
    Resources,
    RolloutPolicy,
    Scaling,
    SpecError,
    parse_quantity,
)
from wharf.control.spec.graph import InferenceGraph, InferenceGraphSpec, InferenceRouter, InferenceStep
from wharf.control.spec.inferenceservice import (
    CUSTOM_FORMAT,
    FRAMEWORKS,
    MODEL_FORMATS,
    NOT_IN_REVISION,
    Batcher,
    ComponentExtension,
    ComponentSpec,
    Container,
    CustomComponentSpec,
    InferenceService,
    InferenceServiceSpec,
    LoggerSpec,
    ModelFormat,
    ModelSpec,
    PredictorSpec,
    component_fingerprint,
    revision_template,
)
from wharf.control.spec.ignored import local_warnings
from wharf.control.spec.manifests import KINDS, MAX_DOCUMENTS, Manifest, parse_manifest, parse_manifests

__all__ = [
    "AUTO_ROLLBACK_ERROR_RATE",
    "AUTO_ROLLBACK_P99_MS",
    "CUSTOM_FORMAT",
    "DEFAULT_TIMEOUT_S",
    "FRAMEWORKS",
    "KINDS",
    "MAX_DOCUMENTS",
    "MODEL_FORMATS",
    "NOT_IN_REVISION",
    "SHADOW_PERCENT",
    "WHARF_PREFIX",
    "Batcher",
    "ComponentExtension",
    "ComponentSpec",
    "Container",
    "CustomComponentSpec",
    "EnvVar",
    "InferenceGraph",
    "InferenceGraphSpec",
    "InferenceRouter",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceStep",
    "LoggerSpec",
    "Manifest",
    "ModelFormat",
    "ModelSpec",
    "ObjectMeta",
    "PredictorSpec",
    "Resources",
    "RolloutPolicy",
    "Scaling",
    "SpecError",
    "component_fingerprint",
    "local_warnings",
    "parse_manifest",
    "parse_manifests",
    "parse_quantity",
    "revision_template",
]
