"""Planning an InferenceService's components: what each revision runs and which parts are refused."""

from __future__ import annotations

import pytest
import yaml

from wharf.control.plan import PREDICTOR, TRANSFORMER, component_name, service_plan, unserved_fields
from wharf.control.spec import parse_manifest

TRANSFORMED = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: reviews, namespace: shop}
spec:
  transformer:
    minReplicas: 2
    maxReplicas: 5
    timeout: 30
    model:
      modelFormat: {name: custom}
      storageUri: reviews:ReviewTransformer
      env: [{name: CUDA_VISIBLE_DEVICES, value: ''}]
  predictor:
    minReplicas: 0
    timeout: 20
    model:
      modelFormat: {name: sklearn}
      protocolVersion: grpc-v2
      storageUri: models/reviews.joblib
"""


def manifest(text: str) -> dict:
    return parse_manifest(yaml.safe_load(text)).to_manifest()


def test_a_transformer_is_planned_in_front_of_its_predictor() -> None:
    plan = service_plan(manifest(TRANSFORMED), "example.com")
    assert list(plan.components) == [TRANSFORMER, PREDICTOR] and plan.front == TRANSFORMER
    transformer, predictor = plan.components[TRANSFORMER], plan.components[PREDICTOR]
    assert transformer.replica["model_uri"] == "reviews:ReviewTransformer" and transformer.replica["runtime"] is None
    assert transformer.replica["predictor"] == {
        "host": "reviews-predictor.shop.example.com",
        "service": "shop/reviews-predictor",
        "model": "reviews",
        "protocol": "grpc-v2",
        "timeout_s": 20.0,
    }
    assert transformer.replica["env"]["CUDA_VISIBLE_DEVICES"] == ""  # placed apart by its own environment
    assert "CUDA_VISIBLE_DEVICES" not in predictor.replica["env"] and "predictor" not in predictor.replica
    # Each component scales on its own.
    assert (transformer.scaling.min_scale, transformer.scaling.max_scale) == (2, 5)
    assert predictor.scaling.min_scale == 0
    assert (transformer.timeout_s, predictor.timeout_s) == (30.0, 20.0)
    assert transformer.fingerprint != predictor.fingerprint


def test_a_predictor_alone_is_its_own_front() -> None:
    alone = TRANSFORMED.split("  transformer:")[0] + "  predictor:" + TRANSFORMED.split("  predictor:")[1]
    plan = service_plan(manifest(alone), "example.com")
    assert list(plan.components) == [PREDICTOR] and plan.front == PREDICTOR


@pytest.mark.parametrize(
    "extra, refused",
    [
        ("  explainer: {containers: [{image: alibi}]}\n", ["explainer.containers"]),
        ("  transformer: {containers: [{image: kserve/image-transformer}]}\n", ["transformer.containers"]),
        (
            "  transformer:\n    logger: {url: 'http://sink'}\n    model: {modelFormat: {name: custom}, storageUri: a:B}\n",
            [],
        ),
    ],
)
def test_parts_this_release_cannot_serve_are_named(extra: str, refused: list[str]) -> None:
    alone = TRANSFORMED.split("  transformer:")[0] + "  predictor:" + TRANSFORMED.split("  predictor:")[1]
    assert unserved_fields(manifest(alone + extra)) == refused
    assert unserved_fields(manifest(TRANSFORMED)) == []


def test_a_transformer_gets_a_new_revision_when_the_predictor_it_calls_changes_protocol_or_timeout() -> None:
    before = service_plan(manifest(TRANSFORMED), "example.com").components
    for change in (TRANSFORMED.replace("grpc-v2", "v2"), TRANSFORMED.replace("timeout: 20", "timeout: 200")):
        after = service_plan(manifest(change), "example.com").components
        assert after[TRANSFORMER].fingerprint != before[TRANSFORMER].fingerprint
    same = service_plan(manifest(TRANSFORMED.replace("minReplicas: 0", "minReplicas: 3")), "example.com")
    assert same.components[TRANSFORMER].fingerprint == before[TRANSFORMER].fingerprint


def test_the_environment_that_points_a_transformer_at_its_predictor_is_what_it_reads() -> None:
    from wharf.control.plan import predictor_env
    from wharf.transformer import PredictorSettings

    calls = service_plan(manifest(TRANSFORMED), "example.com").components[TRANSFORMER].replica["predictor"]
    env = predictor_env(calls, "http://127.0.0.1:8000", "127.0.0.1:8001", "shop/reviews/transformer")
    settings = PredictorSettings(**{k.removeprefix("WHARF_PREDICTOR_").lower(): v for k, v in env.items()})
    assert (settings.url, settings.grpc_target, settings.protocol) == (
        "http://127.0.0.1:8000",
        "127.0.0.1:8001",
        "grpc-v2",
    )
    assert (settings.host, settings.service, settings.model, settings.timeout_s, settings.caller) == (
        "reviews-predictor.shop.example.com",
        "shop/reviews-predictor",
        "reviews",
        20.0,
        "shop/reviews/transformer",
    )


def test_a_component_behind_the_front_one_answers_at_one_name() -> None:
    assert component_name("reviews", PREDICTOR) == "reviews-predictor"
    plan = service_plan(yaml.safe_load(TRANSFORMED), "example.com")
    calls = plan.components[TRANSFORMER].replica["predictor"]
    assert calls["host"] == f"{component_name('reviews', PREDICTOR)}.shop.example.com"
