import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.model.base import Model, bind_inputs, check_inputs, to_response
from wharf.protocol.v2 import InferRequest, InferResponse, RequestedOutput, Tensor, TensorSpec


def _request(*names: str) -> InferRequest:
    return InferRequest([Tensor(name, np.zeros(1)) for name in names])


class Declared(Model):
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("a", "FP64", [-1]), TensorSpec("b", "FP64", [-1])]


def test_bind_inputs_by_name_or_position() -> None:
    model = Model("m")
    assert [t.name for t in bind_inputs(model, _request("b", "a"), ["a", "b"])] == ["a", "b"]
    assert [t.name for t in bind_inputs(model, _request("y", "x"), ["a", "b"])] == ["y", "x"]
    assert [t.name for t in bind_inputs(model, _request("a"), ["a", "b"], required=1)] == ["a"]


@pytest.mark.parametrize(
    ("names", "required", "message"),
    [
        (("b",), 1, r"missing input\(s\) \['a'\]"),
        (("a",), 2, r"missing input\(s\) \['b'\]"),
        (("x",), 2, "takes 2 input"),
        (("x", "y", "z"), 2, "takes 2 input"),
    ],
)
def test_bind_inputs_names_what_is_missing(names: tuple[str, ...], required: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        bind_inputs(Model("m"), _request(*names), ["a", "b"], required=required)


def test_declared_inputs_are_checked_by_name() -> None:
    check_inputs(Declared("m"), _request("a", "b"))
    with pytest.raises(InvalidInput, match=r"unexpected input\(s\) \['c'\]"):
        check_inputs(Declared("m"), _request("a", "b", "c"))
    with pytest.raises(InvalidInput, match=r"missing input\(s\) \['b'\]"):
        check_inputs(Declared("m"), _request("a"))
    check_inputs(Model("m"), _request("anything"))  # undeclared: anything goes


def test_to_response_normalises_results_and_selects_outputs() -> None:
    model = Model("m", "3")
    request = _request("x")
    request.id = "r"
    response = to_response(model, np.array([1, 2]), request)
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "r")
    assert response.outputs[0].name == "output-0" and response.outputs[0].datatype == "INT64"
    request.outputs = [RequestedOutput("b")]
    selected = to_response(model, {"a": [1], "b": [2.5]}, request)
    assert [(t.name, t.data.tolist()) for t in selected.outputs] == [("b", [2.5])]
    request.outputs = [RequestedOutput("c")]
    with pytest.raises(InvalidInput, match=r"no output\(s\) \['c'\]"):
        to_response(model, InferResponse("m", [Tensor("a", np.zeros(1))]), request)
