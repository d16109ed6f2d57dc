"""ART's attacks on a real model server: examples whose prediction differs, KServe's request and answer, seeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.integration.conftest import RunningServer
from tests.unit.explain.conftest import Data, predictor_settings, rows_request
from wharf.errors import ConfigurationError, InvalidInput
from wharf.explain.adversarial import Adversarial, kserve_request
from wharf.explain.predictor import Predictor
from wharf.explain.settings import AttackOptions
from wharf.protocol.v2 import InferRequest, Tensor

SQUARE = AttackOptions(nb_classes=10, max_iter=50, eps=4.0, clip_min=0, clip_max=16)


@pytest.fixture
def digits_predictor(predictors: RunningServer) -> Iterator[Predictor]:
    made = Predictor(predictor_settings(predictors, "digits"), "digits")
    yield made
    made.close()


def test_square_attack_answers_kserves_request_with_an_example_predicted_otherwise(
    digits_predictor: Predictor, repository: Path, digits: Data
) -> None:
    x, y = digits
    request = kserve_request({"instances": [x[0].reshape(8, 8).tolist(), int(y[0])]})
    assert request is not None
    explanation = Adversarial("digits", digits_predictor, "SquareAttack", SQUARE).explain(request)

    answer = explanation.v1["explanations"]
    assert explanation.method == "art.SquareAttack"
    assert set(answer) == {"adversarial_example", "L2 error", "adversarial_prediction", "prediction"}
    model = joblib.load(repository / "digits" / "model.joblib")
    example = np.asarray(answer["adversarial_example"])
    assert example.shape == (1, 8, 8)
    assert answer["prediction"] == model.predict(x[:1])[0] == y[0]
    assert answer["adversarial_prediction"] == model.predict(example.reshape(1, -1))[0] != answer["prediction"]
    assert answer["L2 error"] == pytest.approx(np.linalg.norm(example.reshape(-1) - x[0]))
    assert example.min() >= 0 and example.max() <= 16  # clip_min, clip_max
    tensors = {t.name: t for t in explanation.outputs}
    assert (tensors["l2_error"].datatype, tensors["adversarial_prediction"].datatype) == ("FP64", "INT64")
    assert tensors["adversarial_example"].data.shape == (1, 8, 8)


def test_an_explanation_is_the_same_every_time(digits_predictor: Predictor, digits: Data) -> None:
    attack = Adversarial("digits", digits_predictor, "SquareAttack", SQUARE)
    request = rows_request(digits[0][:2].reshape(2, 8, 8))  # rows of images, labels from the predictor
    first, again = attack.explain(request), attack.explain(request)
    for a, b in zip(first.outputs, again.outputs):
        np.testing.assert_array_equal(a.data, b.data)
    assert first.v1["explanations"]["prediction"].tolist() == digits[1][:2].tolist()


def test_hop_skip_jump_takes_rows_of_features(predictors: RunningServer, repository: Path, iris: Data) -> None:
    predictor = Predictor(predictor_settings(predictors, "iris"), "iris")
    options = AttackOptions(nb_classes=3, max_iter=5, max_eval=50, init_eval=10, init_size=20)
    try:
        explanation = Adversarial("iris", predictor, "HopSkipJump", options).explain(rows_request(iris[0][[0, 70]]))
    finally:
        predictor.close()
    answer = explanation.v1["explanations"]
    model = joblib.load(repository / "iris" / "model.joblib")
    examples = np.asarray(answer["adversarial_example"])
    assert answer["prediction"].tolist() == model.predict(iris[0][[0, 70]]).tolist()
    assert answer["adversarial_prediction"].tolist() == model.predict(examples).tolist()
    assert (answer["adversarial_prediction"] != answer["prediction"]).all()
    np.testing.assert_allclose(answer["L2 error"], np.linalg.norm(examples - iris[0][[0, 70]], axis=1))


def test_square_attack_refuses_rows_that_are_not_images(digits_predictor: Predictor, digits: Data) -> None:
    attack = Adversarial("digits", digits_predictor, "SquareAttack", SQUARE)
    with pytest.raises(InvalidInput, match=r"SquareAttack perturbs images.*got shape \[2, 64\]"):
        attack.explain(rows_request(digits[0][:2]))


@pytest.mark.parametrize(
    ("labels", "message"),
    [([3, 4], "'label' must hold one class index 0..9 per row (1), got [3, 4]"), ([12], "got [12]")],
)
def test_labels_must_be_classes_one_per_row(digits_predictor: Predictor, labels: list[int], message: str) -> None:
    attack = Adversarial("digits", digits_predictor, "SquareAttack", SQUARE)
    request = InferRequest([Tensor("input-0", np.zeros((1, 8, 8))), Tensor("label", np.array(labels))])
    with pytest.raises(InvalidInput) as refused:
        attack.explain(request)
    assert message in refused.value.message


def test_a_predictor_answering_other_classes_is_refused(predictors: RunningServer, iris: Data) -> None:
    predictor = Predictor(predictor_settings(predictors, "iris"), "iris")
    try:
        attack = Adversarial("iris", predictor, "HopSkipJump", AttackOptions(nb_classes=10, max_iter=1))
        with pytest.raises(InvalidInput, match=r"of shape \[1, 3\]; the attack needs class probabilities \[rows, 10\]"):
            attack.explain(rows_request(iris[0][:1]))
    finally:
        predictor.close()


def test_options_art_refuses_are_refused_at_load_time(digits_predictor: Predictor) -> None:
    with pytest.raises(ConfigurationError, match="art.HopSkipJump: "):
        Adversarial("digits", digits_predictor, "HopSkipJump", AttackOptions(norm="1"))


def test_kserves_request_is_one_example_with_or_without_its_batch_axis() -> None:
    image = np.arange(4.0).reshape(2, 2)
    for sent in (image.tolist(), [image.tolist()]):
        request = kserve_request({"instances": [sent, 1]})
        assert request is not None
        assert request.inputs[0].data.shape == (1, 2, 2) and request.inputs[1].data.tolist() == [1]
    assert kserve_request({"instances": [[1.0, 2.0], [3.0, 4.0]]}) is None  # rows, not [image, label]
    assert kserve_request({"instances": [[1.0, 2.0], 0.5]}) is None
