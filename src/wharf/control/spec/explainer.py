"""The explanation methods `spec.explainer` may name: KServe's `art`, and Wharf's own `shap`.

KServe's ART explainer, as KServe writes it:

    explainer:
      art:
        type: SquareAttack          # or HopSkipJump (Wharf's addition)
        config: {nb_classes: "3", max_iter: "20"}

answers adversarial examples; `config` holds the attack's options as strings, as KServe passes them to its ART
server (`wharf.explain` names the keys it reads and refuses others when the replica starts).

Wharf's extension (KServe has no SHAP explainer), every field but `storageUri` optional:

    explainer:
      shap:
        type: Auto                  # Tree (exact, loads the predictor's artifact), Kernel (model-agnostic), or Auto
        storageUri: data/background.csv   # background rows: CSV, Parquet or NPY, read by Wharf's storage layer
        sampleSize: 100             # background rows sampled (seeded by `seed`)
        nSamples: 256               # Kernel SHAP's budget: model evaluations per explained row
        featureNames: [a, b, ...]   # else the background's header, else f0, f1, ...
        output: predict_proba       # the V2 output to explain (default: probabilities where the model has them)

Tree explanations need the predictor's own artifact, so they apply to a predictor of format sklearn, xgboost or
lightgbm; `Auto` picks Tree when the replica finds a tree ensemble there, else Kernel, which needs background rows.
Both sections take a container's `args`, `env` and `resources`, and `runtimeVersion` (kept, changing nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from wharf.control.spec.common import EnvVar, Problem, Resources
from wharf.control.spec.ignored import ContainerSettings

#: The predictor formats whose artifacts tree explanations read.
TREE_FORMATS = ("sklearn", "xgboost", "lightgbm")
#: The largest Kernel SHAP budget and background sample a manifest may ask for (each explained row costs
#: nSamples x sampleSize model rows).
MAX_SAMPLES = 100_000


class ExplainerContainer(ContainerSettings):
    """What both methods' sections share: the container fields of KServe's ExplainerExtensionSpec that Wharf runs."""

    storage_uri: str | None = None
    runtime_version: str | None = None
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)


class ARTExplainerSpec(ExplainerContainer):
    """KServe's ART explainer: adversarial examples made by a black-box attack on the predictor."""

    type: Literal["SquareAttack", "HopSkipJump"]
    config: dict[str, str] = Field(default_factory=dict)


class SHAPExplainerSpec(ExplainerContainer):
    """Wharf's SHAP explainer: per-feature contributions that add up to the model's output."""

    type: Literal["Auto", "Tree", "Kernel"] = "Auto"
    sample_size: int = Field(100, ge=1, le=MAX_SAMPLES)
    n_samples: int = Field(256, ge=1, le=MAX_SAMPLES)
    feature_names: list[str] | None = None
    output: str | None = None
    seed: int = 0

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.type == "Kernel" and not self.storage_uri:
            yield (("storageUri",), "required for Kernel SHAP: the background rows (CSV, Parquet or NPY)")
        if self.feature_names is not None and len(set(self.feature_names)) != len(self.feature_names):
            yield (("featureNames",), "names must be unique")
