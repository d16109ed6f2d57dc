"""Feature squeezing: the squeezers, the threshold at a false-positive rate, and `AdversarialDetector` on a real
scikit-learn classifier's `predict_proba` wrapped as the async predict; the sampler."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from wharf.errors import ConfigurationError, InvalidInput
from wharf.monitor.detectors import (
    AdversarialDetector,
    MedianSmoothing,
    Quantize,
    Round,
    Sampler,
    parse_squeezers,
    threshold_at,
)

pytestmark = pytest.mark.anyio
SQUEEZERS = (Quantize(5, 0.0, 16.0), Quantize(8, 0.0, 16.0))


class Digits:
    """A digits classifier and its clean rows, the classifier called as a predictor is (rows counted)."""

    def __init__(self) -> None:
        x, y = load_digits(return_X_y=True)
        self.train, self.calibrate, self.test = x[:900], x[900:1350], x[1350:]
        self.model = MLPClassifier((64, 64), max_iter=2000, random_state=0).fit(self.train / 16, y[:900])
        self.calls: list[int] = []

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(len(rows))
        return self.model.predict_proba(rows / 16)


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def test_squeezers_quantize_smooth_and_round() -> None:
    rows = np.array([[0.0, 3.9, 4.1, 8.0, 15.0, 20.0]])
    assert Quantize(3, 0.0, 16.0)(rows).tolist() == [[0.0, 0.0, 8.0, 8.0, 16.0, 16.0]]
    assert Quantize(2, 0.0, 16.0).name == "levels:2"
    image = np.zeros((1, 16))
    image[0, 5] = 9.0  # one bright pixel of a 4x4 image: smoothed away
    assert MedianSmoothing(2, (4, 4))(image).tolist() == np.zeros((1, 16)).tolist()
    assert Round(0.5)(np.array([[1.26, -0.74]])).tolist() == [[1.5, -0.5]]
    assert rows.tolist() == [[0.0, 3.9, 4.1, 8.0, 15.0, 20.0]]  # inputs left as they were


def test_squeezers_are_parsed_from_a_setting_naming_what_is_wrong() -> None:
    parsed = parse_squeezers("levels:3, bits:2,median:2,round:0.1", 0.0, 16.0, (8, 8))
    assert [s.name for s in parsed] == ["levels:3", "levels:4", "median:2", "round:0.1"]
    with pytest.raises(ConfigurationError, match="'blur:2' is not one of"):
        parse_squeezers("blur:2")
    with pytest.raises(ConfigurationError, match="'levels:x': 'x' is not a number"):
        parse_squeezers("levels:x", 0.0, 1.0)
    with pytest.raises(ConfigurationError, match="'median:2' smooths images; no image shape"):
        parse_squeezers("median:2")
    with pytest.raises(ConfigurationError, match="'bits:2' quantizes between bounds"):
        parse_squeezers("bits:2")
    with pytest.raises(ConfigurationError, match="at least 2 levels"):
        parse_squeezers("levels:1", 0.0, 1.0)


def test_the_threshold_is_the_conformal_quantile_of_the_clean_scores() -> None:
    scores = np.arange(1.0, 100.0)  # 99 clean scores 1..99
    assert threshold_at(scores[::-1], 0.05) == 95.0  # the ceil(100 * 0.95) = 95th smallest
    assert threshold_at(scores, 0.5) == 50.0
    with pytest.raises(InvalidInput, match="needs at least 19 clean rows, got 10"):
        threshold_at(scores[:10], 0.05)
    with pytest.raises(InvalidInput, match=r"must be in \(0, 1\)"):
        threshold_at(scores, 0.0)


async def test_a_fitted_detector_lets_clean_rows_through_at_about_its_rate_and_calls_the_model_once(
    digits: Digits,
) -> None:
    detector = await AdversarialDetector.fit(digits.predict, SQUEEZERS, digits.calibrate, fpr=0.05)
    assert digits.calls[-1] == 3 * len(digits.calibrate)  # the rows and both squeezed copies, in one call
    assert 0 < detector.threshold < 2
    scores = await detector.score(digits.test)
    assert digits.calls[-1] == 3 * len(digits.test)
    assert scores.by_squeezer.shape == (len(digits.test), 2)
    assert scores.instance_score.tolist() == scores.by_squeezer.max(axis=1).tolist()
    assert scores.is_adversarial.mean() < 0.12  # clean rows: near the 5% aimed at
    assert scores.rows(0, 3).data()["is_adversarial"] == scores.is_adversarial[:3].astype(int).tolist()


async def test_images_between_two_classes_are_flagged_near_the_boundary_and_the_clean_ends_are_not(
    digits: Digits,
) -> None:
    detector = await AdversarialDetector.fit(digits.predict, SQUEEZERS, digits.calibrate, fpr=0.05)
    image = digits.test[:1]
    # Halfway between two images of different classes: an answer squeezing moves.
    other = next(
        row for row in digits.test if digits.model.predict(row[None] / 16)[0] != digits.model.predict(image / 16)[0]
    )
    mixes = np.array([image[0] + t * (other - image[0]) for t in np.linspace(0, 1, 41)])
    scores = await detector.score(mixes)
    assert not scores.is_adversarial[0] and not scores.is_adversarial[-1]  # the clean images themselves
    assert scores.is_adversarial.any()  # somewhere near the boundary


async def test_a_predictor_answering_the_wrong_shape_is_refused() -> None:
    async def labels(rows: np.ndarray) -> np.ndarray:
        return np.zeros(len(rows))

    with pytest.raises(InvalidInput, match=r"probabilities \[rows, classes\] for 6 rows, the predictor answered"):
        await AdversarialDetector(labels, SQUEEZERS, 0.5).score(np.zeros((2, 64)))
    with pytest.raises(InvalidInput, match="at least one squeezer"):
        AdversarialDetector(labels, (), 0.5)


def test_the_sampler_is_seeded_and_takes_its_rate() -> None:
    first, second = Sampler(0.25, seed=7), Sampler(0.25, seed=7)
    taken = [first.take() for _ in range(4000)]
    assert taken == [second.take() for _ in range(4000)]
    assert sum(taken) / len(taken) == pytest.approx(0.25, abs=0.03)
    assert not any(Sampler(0.0).take() for _ in range(100)) and all(Sampler(1.0).take() for _ in range(100))
    with pytest.raises(ConfigurationError, match=r"sampling rate must be in \[0, 1\], got 1.5"):
        Sampler(1.5)
