"""WHARF_EXPLAINER_CONFIG: the method's settings, with their defaults, and every mistake refused naming its field."""

from __future__ import annotations

import json

import pytest

from wharf.errors import ConfigurationError
from wharf.explain.settings import ArtConfig, ExplainerSettings, ShapConfig, parse


def test_shap_takes_the_manifests_camel_case_fields_and_fills_in_defaults() -> None:
    config = parse(json.dumps({"method": "shap", "storageUri": "bg.csv"}))
    assert isinstance(config, ShapConfig)
    assert (config.type, config.storage_uri, config.sample_size, config.n_samples) == ("Auto", "bg.csv", 100, 256)
    assert (config.feature_names, config.output, config.seed, config.model) == (None, None, 0, None)


def test_the_control_planes_whole_shap_section_reads() -> None:
    section = {
        "method": "shap",
        "type": "Tree",
        "storageUri": None,
        "sampleSize": 50,
        "nSamples": 64,
        "featureNames": ["a", "b"],
        "output": "predict_proba",
        "seed": 7,
        "model": {"storageUri": "models/iris", "format": "sklearn"},
    }
    config = parse(json.dumps(section))
    assert isinstance(config, ShapConfig)
    assert config.model is not None and (config.model.storage_uri, config.model.format) == ("models/iris", "sklearn")
    assert (config.n_samples, config.feature_names, config.seed) == (64, ["a", "b"], 7)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"method": "shap", "type": "Kernel"}, "storageUri: Kernel SHAP needs background rows"),
        ({"method": "shap", "type": "Tree"}, "model: tree SHAP reads the predictor's artifact"),
        ({"method": "shap", "sampleSize": 0}, "sampleSize: Input should be greater than or equal to 1"),
        ({"method": "shap", "sample_size": 5, "storageUri": "x"}, "sample_size: Extra inputs are not permitted"),
        ({"method": "shap", "featureNames": ["a", "a"]}, "featureNames: names must be unique"),
        ({"method": "shap", "model": {"uri": "x"}}, "model.storageUri: Field required"),
        ({"method": "lime"}, "does not match any of the expected tags: 'shap', 'art'"),
        ({"method": "art"}, "type: Field required"),
        ({"method": "art", "type": "Carlini"}, "type: Input should be 'SquareAttack' or 'HopSkipJump'"),
    ],
)
def test_a_config_that_does_not_fit_is_refused_naming_the_field(section: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match="WHARF_EXPLAINER_CONFIG: ") as refused:
        parse(json.dumps(section))
    assert message in refused.value.message


def test_art_reads_kserves_string_options() -> None:
    config = parse(json.dumps({"method": "art", "type": "SquareAttack", "config": {"nb_classes": "3", "eps": "0.5"}}))
    assert isinstance(config, ArtConfig)
    options = config.options()
    assert (options.nb_classes, options.max_iter, options.eps) == (3, 1000, 0.5)  # KServe's default max_iter
    assert options.given() == {"eps": 0.5}  # passed to the attack as they are


def test_art_defaults_are_kserves() -> None:
    options = parse(json.dumps({"method": "art", "type": "HopSkipJump"})).options()  # type: ignore[union-attr]
    assert (options.nb_classes, options.max_iter, options.norm) == (10, 1000, None)


@pytest.mark.parametrize(
    ("attack", "options", "message"),
    [
        ("SquareAttack", {"nb_classes": "3", "steps": "9"}, "config: unknown option(s) ['steps'] for SquareAttack"),
        ("HopSkipJump", {"eps": "0.1"}, "config: unknown option(s) ['eps'] for HopSkipJump; it takes ["),
        ("SquareAttack", {"nb_classes": "three"}, "config: nb_classes: Input should be a valid integer"),
        ("SquareAttack", {"max_iter": "0"}, "config: max_iter: Input should be greater than or equal to 1"),
        ("SquareAttack", {"norm": "3"}, "config: norm: Input should be 'inf', '1' or '2'"),
    ],
)
def test_art_options_that_do_not_fit_are_refused_naming_them(attack: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse(json.dumps({"method": "art", "type": attack, "config": options}))
    assert message in refused.value.message


def test_the_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_EXPLAINER_CONFIG", json.dumps({"method": "art", "type": "SquareAttack"}))
    assert isinstance(ExplainerSettings().method(), ArtConfig)


def test_an_explainer_without_a_config_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHARF_EXPLAINER_CONFIG", raising=False)
    with pytest.raises(ConfigurationError, match="set WHARF_EXPLAINER_CONFIG"):
        ExplainerSettings().method()


def test_json_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="WHARF_EXPLAINER_CONFIG: Invalid JSON"):
        parse("{")
