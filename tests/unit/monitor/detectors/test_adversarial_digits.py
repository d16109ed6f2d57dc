"""A small run of bench/adversarial_detection.py: feature squeezing against ART's SquareAttack on the digits
classifier, 40 attacked images (of 300) and one seed (of 10); detection clearly above chance (the false-positive rate) at
the fitted threshold. The full measurement is recorded in docs/MONITORING_DETECTORS.md."""

from __future__ import annotations

import pytest

from bench.adversarial_detection import measure

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_feature_squeezing_detects_square_attack_examples_well_above_chance() -> None:
    result = await measure(images=40, attack="square", eps=2.0, max_iter=200, fpr=0.05, seed=0)
    assert result.accuracy > 0.9 and result.adversarial >= 15
    assert result.fpr <= 0.1  # on all the clean test images, at a threshold fitted for 5%
    assert result.detection >= 0.6 and result.detection > 4 * result.fpr
