"""The repository's catalogue: lazy loads, measured bytes, LRU eviction within a budget, failures and unloading.

Its models are real `wharf.Model` classes in a module written to a temporary directory, registered by class path
(`module:Class`), each holding a known number of bytes (below the RSS noise floor, so measured by its objects).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from wharf.errors import InvalidInput, ModelNotFound, ModelNotReady
from wharf.model.memory import parse_bytes
from wharf.model.catalogue import FIRST_RETRY_S, LAST_RETRY_S, Backoff, Registration
from wharf.model.repository import ModelRepository, NotLoaded

pytestmark = pytest.mark.anyio

BALLAST = 200_000  # bytes each small model holds
MODULE = """
import time
import numpy as np
from wharf.model.base import Model

class Ballast(Model):
    nbytes = 200_000
    loads = 0

    def load(self):
        type(self).loads += 1
        time.sleep(0.02)  # long enough for concurrent requests to find the load under way
        self.data = np.ones(self.nbytes // 8)

    def predict(self, payload):
        return self.data[:1]

class Huge(Ballast):
    nbytes = 4_000_000

class Broken(Model):
    def load(self):
        raise RuntimeError("the artifact is corrupt")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of the module holding the test's model classes, importable while the tests run."""
    root = tmp_path_factory.mktemp("catalogue")
    (root / "catalogue_models.py").write_text(MODULE)
    sys.path.insert(0, str(root))
    yield "catalogue_models"
    sys.path.remove(str(root))
    sys.modules.pop("catalogue_models", None)


def _registered(budget: int | None, models: str, count: int, cls: str = "Ballast") -> ModelRepository:
    repository = ModelRepository(budget=budget)
    for i in range(count):
        repository.register(f"m{i}", Registration(f"{models}:{cls}"))
    return repository


def _row(repository: ModelRepository, name: str) -> dict:
    return next(row for row in repository.index() if row["name"] == name)


async def test_a_registered_model_loads_on_its_first_request_and_is_measured(models: str) -> None:
    repository = _registered(None, models, 1)
    assert _row(repository, "m0")["state"] == "REGISTERED" and repository.ready()
    with pytest.raises(NotLoaded):
        repository.serving("m0")
    model = await repository.acquire("m0")
    assert repository.serving("m0") is model
    row = _row(repository, "m0")
    assert row["state"] == "READY" and row["loads"] == 1 and row["requests"] == 2
    assert row["measured_by"] == "objects" and BALLAST <= row["resident_bytes"] < BALLAST + 4096
    assert repository.memory() | {"process_rss_bytes": None} == {
        "budget_bytes": None,
        "used_bytes": row["resident_bytes"],
        "process_rss_bytes": None,
        "models_registered": 1,
        "models_loaded": 1,
        "loads": 1,
        "evictions": 0,
        "load_failures": 0,
        "hits": 1,
        "misses": 1,
        "hit_ratio": 0.5,
    }


async def test_concurrent_first_requests_share_one_load(models: str) -> None:
    repository = _registered(None, models, 1)
    loads_before = sys.modules[models].Ballast.loads if models in sys.modules else 0
    served = await asyncio.gather(*(repository.acquire("m0") for _ in range(10)))
    assert len({id(m) for m in served}) == 1
    assert sys.modules[models].Ballast.loads - loads_before == 1 and _row(repository, "m0")["loads"] == 1


async def test_the_least_recently_used_models_are_evicted_to_stay_within_the_budget(models: str) -> None:
    repository = _registered(3 * BALLAST + 50_000, models, 5)  # three fit
    for name in ("m0", "m1", "m2"):
        await repository.acquire(name)
    repository.serving("m0")  # m0 is used again: m1 is now the least recently used
    await repository.acquire("m3")
    await repository.acquire("m4")
    states = {row["name"]: row["state"] for row in repository.index()}
    assert states == {"m0": "READY", "m1": "REGISTERED", "m2": "REGISTERED", "m3": "READY", "m4": "READY"}
    assert "evicted (least recently used) to make room for model 'm3'" in _row(repository, "m1")["reason"]
    memory = repository.memory()
    assert memory["evictions"] == 2 and memory["models_loaded"] == 3 and memory["used_bytes"] <= memory["budget_bytes"]
    await repository.acquire("m1")  # an evicted model loads again on its next request
    assert _row(repository, "m1")["loads"] == 2 and _row(repository, "m0")["state"] == "REGISTERED"


async def test_a_model_serving_requests_is_never_evicted(models: str) -> None:
    repository = _registered(2 * BALLAST + 50_000, models, 3)  # two fit
    busy = {"m0"}
    repository.in_flight = lambda name: 1 if name in busy else 0
    await repository.acquire("m0")
    await repository.acquire("m1")
    await repository.acquire("m2")  # m0 is the least recently used, but busy: m1 goes
    assert [_row(repository, n)["state"] for n in ("m0", "m1", "m2")] == ["READY", "REGISTERED", "READY"]
    busy |= {"m2"}
    with pytest.raises(ModelNotReady, match="models serving requests hold"):
        await repository.acquire("m1")  # nothing idle to evict


async def test_a_model_larger_than_the_whole_budget_is_refused_with_its_reason(models: str) -> None:
    repository = _registered(1_000_000, models, 1)
    repository.register("huge", Registration(f"{models}:Huge"))
    with pytest.raises(ModelNotReady, match="more than the whole memory budget of 1000000 bytes"):
        await repository.acquire("huge")
    assert _row(repository, "huge")["state"] == "FAILED"
    await repository.acquire("m0")  # the others still serve
    with pytest.raises(InvalidInput, match=r"parameters.memory \(2000000 bytes\) is more than"):
        repository.register("declared", Registration(f"{models}:Ballast", declared_bytes=2_000_000))


async def test_a_failed_load_is_reported_and_retried_only_after_a_backoff(models: str) -> None:
    repository = _registered(None, models, 1)
    repository.register("broken", Registration(f"{models}:Broken"))
    with pytest.raises(ModelNotReady, match="failed to load: RuntimeError: the artifact is corrupt"):
        await repository.acquire("broken")
    with pytest.raises(ModelNotReady, match="it is tried again in"):
        await repository.acquire("broken")
    assert repository.memory()["load_failures"] == 1
    row = _row(repository, "broken")
    assert row["state"] == "FAILED" and "the artifact is corrupt" in row["reason"]
    assert repository.ready()  # a catalogue model failing does not take the replica out of rotation
    await repository.acquire("m0")
    await repository.load_registered("broken", Registration(f"{models}:Broken"))  # asked again: no backoff
    with pytest.raises(ModelNotReady, match="failed to load: RuntimeError"):
        await repository.acquire("broken")
    assert repository.memory()["load_failures"] == 2


async def test_unloading_waits_for_requests_in_flight_and_refuses_new_ones(models: str) -> None:
    repository = _registered(None, models, 1)
    in_flight = {"m0": 1}
    repository.in_flight = lambda name: in_flight.get(name, 0)
    model = await repository.acquire("m0")
    unloading = asyncio.create_task(repository.unload("m0"))
    await asyncio.sleep(0.05)
    assert not unloading.done() and model.ready  # the request holding it goes on with it
    with pytest.raises(ModelNotReady):
        repository.serving("m0")
    in_flight["m0"] = 0
    await asyncio.wait_for(unloading, 5)
    assert not model.ready
    with pytest.raises(ModelNotFound):
        repository.serving("m0")


async def test_registering_another_artifact_replaces_the_model(models: str) -> None:
    repository = _registered(None, models, 1)
    first = await repository.acquire("m0")
    await repository.load_registered("m0", Registration(f"{models}:Ballast", declared_bytes=1000))  # same artifact
    assert repository.serving("m0") is first and _row(repository, "m0")["declared_bytes"] == 1000
    await repository.load_registered("m0", Registration(f"{models}:Huge", lazy=False))
    assert not first.ready and _row(repository, "m0")["state"] == "READY"
    assert type(repository.serving("m0")).__name__ == "Huge"


def test_registration_parameters_are_checked_naming_the_field() -> None:
    assert Registration.parse("a", {"storage_uri": "s3://b/a", "memory": "64Mi", "lazy": False}) == Registration(
        "s3://b/a", None, 64 * 2**20, False
    )
    for parameters, field in (
        ({}, "parameters.storage_uri"),
        ({"storage_uri": "x", "memory": "lots"}, "parameters.memory"),
        ({"storage_uri": "x", "lazy": "yes"}, "parameters.lazy"),
        ({"storage_uri": "x", "model_format": 3}, "parameters.model_format"),
        ({"storage_uri": "x", "config": "{}"}, "unknown parameters ['config']"),
        ([], "parameters must be an object"),
    ):
        with pytest.raises(InvalidInput, match=field.replace("[", r"\[").replace("]", r"\]")):
            Registration.parse("a", parameters)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff()
    waits = []
    for _ in range(10):
        backoff = backoff.failed(100.0)
        waits.append(backoff.retry_at - 100.0)
    assert waits[:3] == [FIRST_RETRY_S, 2 * FIRST_RETRY_S, 4 * FIRST_RETRY_S] and waits[-1] == LAST_RETRY_S
    assert not backoff.due(100.0 + LAST_RETRY_S - 1) and backoff.due(100.0 + LAST_RETRY_S)


def test_memory_quantities() -> None:
    assert [parse_bytes(v, "f") for v in (1024, "512Mi", "1G", "1.5Ki", "0")] == [1024, 2**29, 10**9, 1536, 0]
    for bad in ("1e6", "-1", "12 parsecs", True):
        with pytest.raises(ValueError, match="f:"):
            parse_bytes(bad, "f")  # type: ignore[arg-type]
