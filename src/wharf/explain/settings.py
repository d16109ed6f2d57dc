"""What an explainer replica is told to do: `WHARF_EXPLAINER_CONFIG`, a JSON object naming its method.

The control plane writes the manifest's `spec.explainer` section into it as it is (camelCase keys):

    {"method": "shap", "type": "Auto", "storageUri": "data/background.csv", "sampleSize": 100, "nSamples": 256,
     "featureNames": null, "output": null, "seed": 0, "model": {"storageUri": "models/iris", "format": "sklearn"}}
    {"method": "art", "type": "SquareAttack", "config": {"nb_classes": "3", "max_iter": "100"}}

SHAP: `type` Tree reads the predictor's own artifact (`model`) and needs no background (`storageUri` null: path-
dependent tree SHAP); Kernel calls the predictor and needs background rows; Auto is Tree where shap's TreeExplainer
takes the model, else Kernel. ART: `config` holds the attack's options as strings, as KServe passes them to its ART
explainer (`AttackOptions`); an option the attack does not take is refused, naming it. Every unknown field is
refused. Where the predictor is comes from `WHARF_PREDICTOR_*` (`wharf.transformer.PredictorSettings`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.errors import ConfigurationError

CONFIG_ENV = "WHARF_EXPLAINER_CONFIG"


class _Config(BaseModel):
    """camelCase keys only (Python attributes are snake_case); unknown keys refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=False, validate_by_alias=True)


class ModelSource(_Config):
    """The predictor's artifact, for the methods that read the model itself (tree SHAP)."""

    storage_uri: str
    format: str | None = Field(None, description="the predictor's model format (sklearn, xgboost, lightgbm, ...)")


class ShapConfig(_Config):
    """SHAP: per-feature contributions that add up to the model's output."""

    method: Literal["shap"]
    type: Literal["Auto", "Tree", "Kernel"] = "Auto"
    storage_uri: str | None = Field(None, description="background rows: a CSV, Parquet or NPY file")
    sample_size: int = Field(100, ge=1, description="background rows sampled from the file (seeded)")
    n_samples: int = Field(256, ge=1, description="Kernel SHAP's budget: model evaluations per explained row")
    feature_names: list[str] | None = Field(None, description="else the background's header, else f0, f1, ...")
    output: str | None = Field(None, description="the predictor's output to explain (default: its probabilities)")
    seed: int = 0
    model: ModelSource | None = None

    @model_validator(mode="after")
    def _fits_its_type(self) -> Self:
        if self.type == "Kernel" and not self.storage_uri:
            raise ValueError("storageUri: Kernel SHAP needs background rows (a CSV, Parquet or NPY file)")
        if self.type == "Tree" and self.model is None:
            raise ValueError("model: tree SHAP reads the predictor's artifact; give model.storageUri")
        if self.feature_names is not None and len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("featureNames: names must be unique")
        return self


#: The ART options every attack takes, and those of one attack only (KServe's own are nb_classes and max_iter).
_COMMON_OPTIONS = frozenset({"nb_classes", "max_iter", "norm", "clip_min", "clip_max"})
ATTACK_OPTIONS = {
    "SquareAttack": _COMMON_OPTIONS | {"eps", "p_init", "nb_restarts"},
    "HopSkipJump": _COMMON_OPTIONS | {"max_eval", "init_eval", "init_size"},
}


class AttackOptions(BaseModel):
    """An attack's options, read from KServe's strings; None leaves ART's default. `clip_min`/`clip_max` bound the
    example's values (default: none for SquareAttack, as KServe's; the explained row's own range for HopSkipJump,
    which needs bounds)."""

    model_config = ConfigDict(extra="forbid")

    nb_classes: int = Field(10, ge=2, description="the predictor's number of classes (KServe's default 10)")
    max_iter: int = Field(1000, ge=1, description="iterations of the attack (KServe's default 1000)")
    norm: Literal["inf", "1", "2"] | None = None
    clip_min: float | None = None
    clip_max: float | None = None
    eps: float | None = Field(None, gt=0)
    p_init: float | None = Field(None, gt=0, le=1)
    nb_restarts: int | None = Field(None, ge=1)
    max_eval: int | None = Field(None, ge=1)
    init_eval: int | None = Field(None, ge=1)
    init_size: int | None = Field(None, ge=1)

    def given(self) -> dict[str, Any]:
        """The attack's own options that the config sets (those ART takes as they are)."""
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in _COMMON_OPTIONS}


class ArtConfig(_Config):
    """KServe's ART explainer: an adversarial example made by a black-box attack on the predictor."""

    method: Literal["art"]
    type: Literal["SquareAttack", "HopSkipJump"]
    config: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_options(self) -> Self:
        unknown = sorted(set(self.config) - ATTACK_OPTIONS[self.type])
        if unknown:
            raise ValueError(
                f"config: unknown option(s) {unknown} for {self.type}; it takes {sorted(ATTACK_OPTIONS[self.type])}"
            )
        self.options()  # refuses a value that does not read
        return self

    def options(self) -> AttackOptions:
        try:
            return AttackOptions.model_validate(self.config)
        except ValidationError as e:
            raise ValueError(f"config: {_problems(e)}") from None


MethodConfig = Annotated[ShapConfig | ArtConfig, Field(discriminator="method")]
_METHOD = TypeAdapter(MethodConfig)


class ExplainerSettings(BaseSettings):
    """The explainer's environment: `WHARF_EXPLAINER_CONFIG`."""

    model_config = SettingsConfigDict(env_prefix="WHARF_EXPLAINER_", extra="ignore")

    config: str | None = Field(None, description="the method and its settings, a JSON object (ShapConfig, ArtConfig)")

    def method(self) -> ShapConfig | ArtConfig:
        """The configured method; a missing or invalid config is a `ConfigurationError` naming the field."""
        if not self.config:
            raise ConfigurationError(f"the explainer has no method: set {CONFIG_ENV} (a JSON object)")
        return parse(self.config)


def parse(text: str | bytes) -> ShapConfig | ArtConfig:
    """A method's config from its JSON text."""
    try:
        return _METHOD.validate_json(text)
    except ValidationError as e:
        raise ConfigurationError(f"{CONFIG_ENV}: {_problems(e)}") from None


def _problems(error: ValidationError) -> str:
    """Each problem as `field.path: reason` (the method's tag left out of the path)."""
    found = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"] if part not in ("shap", "art")]
        message = problem["msg"].removeprefix("Value error, ")
        found.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(found)
