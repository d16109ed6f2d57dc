"""`check_inputs` asks a model for its declared inputs only when it checks them."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.model.base import Model, check_inputs
from wharf.protocol.v2 import InferRequest, Tensor, TensorSpec


class Counted(Model):
    def __init__(self, name: str, strict: bool) -> None:
        super().__init__(name)
        self.strict_inputs = strict
        self.asked = 0

    def inputs(self) -> list[TensorSpec]:
        self.asked += 1
        return [TensorSpec("a", "FP64", [-1])]


def test_a_model_without_strict_inputs_is_not_asked_for_its_specs() -> None:
    model = Counted("m", strict=False)
    check_inputs(model, InferRequest([Tensor("anything", np.zeros(1))]))
    assert model.asked == 0


def test_a_strict_model_is_checked_against_its_specs() -> None:
    model = Counted("m", strict=True)
    check_inputs(model, InferRequest([Tensor("a", np.zeros(1))]))
    with pytest.raises(InvalidInput, match="unexpected input"):
        check_inputs(model, InferRequest([Tensor("b", np.zeros(1))]))
    assert model.asked == 2
