"""The data plane's inference entry point, with a real repository and no transport."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import Forbidden, ModelNotReady
from wharf.model.base import Model
from wharf.model.repository import ModelRepository
from wharf.protocol.v2 import InferRequest, Tensor
from wharf.server.dataplane import DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.server.settings import ServerSettings

pytestmark = pytest.mark.anyio


class Doubles(Model):
    strict_inputs = False

    def predict(self, payload: InferRequest) -> np.ndarray:
        return payload.inputs[0].data * 2


async def test_a_request_that_picked_a_model_before_it_was_unloaded_is_not_ready() -> None:
    repository = ModelRepository()
    repository.add(Doubles("m"))
    await repository.load_all()
    dataplane = DataPlane(repository, ServerSettings(), ServerMetrics())
    request = InferRequest(inputs=[Tensor("x", np.array([1.0, 2.0]))])
    try:
        picked = dataplane.model("m")
        assert (await dataplane.infer(picked, request)).outputs[0].data.tolist() == [2.0, 4.0]
        await dataplane.unload("m")
        with pytest.raises(ModelNotReady, match="model 'm' is not ready"):
            await dataplane.infer(picked, request)
        assert dataplane._pipelines == {}  # no threads were started again for the unloaded model
    finally:
        dataplane.close()


async def test_the_server_is_ready_only_while_every_model_is_loaded() -> None:
    repository = ModelRepository()
    repository.add(Doubles("m"))
    repository.add(Doubles("n"))
    await repository.load_all()
    dataplane = DataPlane(repository, ServerSettings(), ServerMetrics())
    try:
        assert not dataplane.ready()  # not serving yet
        dataplane.started = True
        assert dataplane.ready()
        await dataplane.unload("n")
        assert not dataplane.ready() and dataplane.model_ready("m")
        await dataplane.load("n")
        assert dataplane.ready()
    finally:
        dataplane.close()


async def test_the_repository_api_can_be_turned_off() -> None:
    repository = ModelRepository()
    repository.add(Doubles("m"))
    await repository.load_all()
    dataplane = DataPlane(repository, ServerSettings(repository_api=False), ServerMetrics())
    try:
        for call in (dataplane.load("m"), dataplane.unload("m")):
            with pytest.raises(Forbidden, match="WHARF_REPOSITORY_API=on"):
                await call
        with pytest.raises(Forbidden, match="turned off"):
            dataplane.repository_index()
        assert dataplane.model_ready("m")
    finally:
        dataplane.close()
