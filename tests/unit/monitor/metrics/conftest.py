"""Stored rows for the metrics' tests: a model with numeric and categorical columns whose inferences drift in one
feature, and the hand-computed fairness example of `test_group_statistics` as a model's logged rows; the request
bodies of a drift and a fairness metric over them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.monitor.metrics.fakes import FrameRows, StoredModel
from wharf.monitor.data import ground_truth


def sample(
    rng: np.random.Generator, n: int, shift: float = 0.0, colors: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    """Rows of model "iris": inputs x1, x2, x3 (normal; x2 moved by `shift`) and color; output label (0 to 2)."""
    return pd.DataFrame(
        {
            "x1": rng.normal(5.0, 1.0, n),
            "x2": rng.normal(3.0, 0.5, n) + shift,
            "x3": rng.normal(1.0, 0.2, n),
            "color": rng.choice(["red", "green", "blue"], n, p=list(colors)),
            "label": rng.integers(0, 3, n),
        }
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def drifting(rng: np.random.Generator) -> FrameRows:
    """Model "iris": reference TRAINING of 3000 rows; 1000 inferences with x2 moved by one standard deviation and
    more blue, then 500 in-distribution ones."""
    inferences = pd.concat([sample(rng, 1000, shift=0.5, colors=(0.3, 0.3, 0.4)), sample(rng, 500)], ignore_index=True)
    return FrameRows(
        iris=StoredModel(
            inputs=["x1", "x2", "x3", "color"],
            outputs=["label"],
            references={"TRAINING": sample(rng, 3000)},
            inferences=inferences,
        )
    )


def fairness_example() -> pd.DataFrame:
    """`test_group_statistics.example` as logged rows: gender (1 privileged, 0 unprivileged, 2 neither), an
    income input, the model's answer `approved` and its ground truth. SPD -0.3, DIR 0.5, EOD -0.3, AOD -4/15,
    equalized odds 0.3."""
    truth = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 0, 0, 0, 0, 0, 0] + [1] * 5
    approved = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0] + [1, 1, 0, 0, 1, 0, 0, 0, 0, 0] + [1] * 5
    gender = [1] * 10 + [0] * 10 + [2] * 5
    return pd.DataFrame(
        {
            "gender": gender,
            "income": np.linspace(1000.0, 5000.0, len(gender)),
            "approved": approved,
            ground_truth("approved"): truth,
        }
    )


def drift_body(**fields: object) -> dict[str, object]:
    """A drift metric's body over model "iris" of `drifting` against its reference TRAINING, with `fields` added."""
    return {"modelId": "iris", "referenceTag": "TRAINING", **fields}


def fairness_body(**fields: object) -> dict[str, object]:
    """A group fairness metric's body over the latest 25 rows of model "credit" (`credit`: the fairness example),
    gender 1 privileged and 0 unprivileged, approved = 1 favorable; `fields` add or replace fields."""
    return {
        "modelId": "credit",
        "protectedAttribute": "gender",
        "privilegedAttribute": 1,
        "unprivilegedAttribute": 0,
        "outcomeName": "approved",
        "favorableOutcome": 1,
        "batchSize": 25,
        **fields,
    }


@pytest.fixture
def credit() -> FrameRows:
    """Model "credit" logging the fairness example, after 100 older rows all approved (outside any batch of 25)."""
    older = pd.DataFrame({"gender": [0] * 100, "income": 100.0, "approved": 1, ground_truth("approved"): 1})
    return FrameRows(
        credit=StoredModel(
            inputs=["gender", "income"],
            outputs=["approved"],
            inferences=pd.concat([older, fairness_example()], ignore_index=True),
        )
    )


@pytest.fixture
def rows(credit: FrameRows, drifting: FrameRows) -> FrameRows:
    """Models "credit" and "iris" in one store."""
    return FrameRows(**credit.models, **drifting.models)
