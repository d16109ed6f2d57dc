"""The adapter serving `kserve.Model` subclasses: what their steps are handed, and how their answers come back.

These checks import kserve, so they run in a pytest of their own, started by test_kserve_model.py: this file's
name keeps it out of the suite's collection (kserve's and tritonclient's generated protobuf modules both register
`inference.*` in protobuf's default pool and cannot share a process)."""

import threading
from typing import Any

import numpy as np
import pytest
from kserve import InferOutput, InferRequest, InferResponse, Model

from wharf.errors import ConfigurationError, ModelLoadError, Unimplemented
from wharf.model import context
from wharf.model.base import Model as WharfModel
from wharf.model.runtimes import kserve_model
from wharf.protocol import v2

pytestmark = pytest.mark.anyio


class Recorder(Model):
    """Plain steps that record what they were handed, and answer what `answer` holds."""

    answer: Any = None

    def load(self) -> bool:
        self.ready = True
        self.seen: list[Any] = []
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        self.seen.append((payload, headers, threading.current_thread() is threading.main_thread()))
        return self.answer if self.answer is not None else {"predictions": [1, 2]}


def _served(cls: type = Recorder) -> kserve_model.KServeModel:
    model = kserve_model.create(cls, "rec")
    model.load()
    return model


def test_kserve_models_are_told_by_their_ancestry() -> None:
    assert kserve_model.is_kserve_model(Recorder)
    assert not kserve_model.is_kserve_model(WharfModel) and not kserve_model.is_kserve_model(dict)


async def test_v1_rows_and_objects_arrive_as_the_v1_dict() -> None:
    model = _served()
    rows = v2.InferRequest([v2.Tensor("input-0", np.array([[1, 2]]))], parameters={"p": 1}, protocol="v1")
    objects = v2.InferRequest(
        [v2.Tensor("name", np.array([b"ada", b"bob"], dtype=object)), v2.Tensor("age", np.array([36, 41]))],
        protocol="v1",
    )
    context.serving([(b"x-trace", b"t1")])
    assert (await model.predict(rows))["predictions"].tolist() == [1, 2]
    await model.predict(objects)
    (first, headers, on_main), (second, _, _) = model.predictor.seen
    assert first == {"instances": [[1, 2]], "parameters": {"p": 1}}
    assert second == {"instances": [{"name": "ada", "age": 36}, {"name": "bob", "age": 41}]}
    assert headers["x-trace"] == "t1" and not on_main  # the request's headers; a plain step in a worker thread


async def test_v2_arrives_as_a_kserve_infer_request_and_its_response_comes_back() -> None:
    model = _served()
    output = InferOutput("y", [2], "FP32")
    output.set_data_from_numpy(np.array([0.5, 1.5], np.float32), binary_data=False)
    model.predictor.answer = InferResponse("r1", "rec", [output])
    request = v2.InferRequest(
        [v2.Tensor("text", np.array([b"hi", b"yo"], dtype=object)), v2.Tensor("x", np.ones((2, 2), np.float32))],
        id="r1",
        outputs=[v2.RequestedOutput("y")],
    )
    answer = await model.predict(request)
    [(handed, _, _)] = model.predictor.seen
    assert isinstance(handed, InferRequest) and handed.id == "r1" and handed.model_name == "rec"
    assert handed.inputs[0].data == ["hi", "yo"] and handed.inputs[1].as_numpy().tolist() == [[1, 1], [1, 1]]
    assert [o.name for o in handed.request_outputs] == ["y"]
    assert [(t.name, t.datatype, t.data.tolist()) for t in answer.outputs] == [("y", "FP32", [0.5, 1.5])]


async def test_v1_object_rows_answered_become_outputs_by_name() -> None:
    model = _served()
    model.predictor.answer = {"predictions": [{"label": "a", "score": 0.5}, {"label": "b", "score": 0.25}]}
    answer = await model.predict(v2.InferRequest([v2.Tensor("input-0", np.ones((2, 1)))], protocol="v1"))
    assert {name: value.tolist() for name, value in answer.items()} == {"label": ["a", "b"], "score": [0.5, 0.25]}


async def test_explain_without_an_override_is_unimplemented() -> None:
    with pytest.raises(Unimplemented):
        await _served().explain(v2.InferRequest([v2.Tensor("input-0", np.ones((1, 1)))], protocol="v1"))


def test_a_load_that_leaves_it_unready_is_refused() -> None:
    class Forgetful(Model):
        def load(self) -> bool:
            return True

    with pytest.raises(ModelLoadError, match=r"load\(\) left self.ready False"):
        _served(Forgetful)


def test_a_class_that_needs_more_than_its_name_is_refused() -> None:
    class Needy(Model):
        def __init__(self, name: str, model_dir: str) -> None:
            super().__init__(name)

    with pytest.raises(ConfigurationError, match="must take the name as its one required argument"):
        kserve_model.create(Needy, "m")
