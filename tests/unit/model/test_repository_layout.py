"""Repository layouts: a root of numbered versions is one model; an empty model directory waits, not ready."""

import shutil
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from wharf.model.repository import ModelRepository

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("artifact") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(*load_iris(return_X_y=True)), path)
    return path


async def test_a_root_of_numbered_versions_is_one_model(tmp_path: Path, artifact: Path) -> None:
    for version in ("1", "2"):
        (tmp_path / "tfk" / version).mkdir(parents=True)
        shutil.copy(artifact, tmp_path / "tfk" / version)
    repository = ModelRepository(tmp_path / "tfk")
    repository.discover()
    await repository.load_all()
    assert repository.names() == ["tfk"] and repository.versions("tfk") == ["1", "2"]
    assert repository.get("tfk").version == "2"


async def test_an_empty_model_directory_waits_until_it_is_loaded(tmp_path: Path, artifact: Path) -> None:
    (tmp_path / "iris").mkdir()
    shutil.copy(artifact, tmp_path / "iris")
    (tmp_path / "later").mkdir()
    repository = ModelRepository(tmp_path)
    repository.discover()
    await repository.load_all()  # the empty directory does not stop the others
    reason = f"its directory {tmp_path / 'later'} is empty: nothing to load yet"
    assert [{k: row[k] for k in ("name", "state", "reason")} for row in repository.index()] == [
        {"name": "iris", "state": "READY", "reason": ""},
        {"name": "later", "state": "UNAVAILABLE", "reason": reason},
    ]
    assert not repository.is_ready("later")
    shutil.copy(artifact, tmp_path / "later")
    await repository.load("later")
    assert repository.is_ready("later")
