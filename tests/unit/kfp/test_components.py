"""The KFP components and the example pipelines as KFP sees them: the committed compiled pipelines are current, the
tasks that act on the live service are never cached, no token is a parameter, and only wharf.kfp's KFP modules
import kfp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import ROOT
from wharf.kfp import components
from wharf.kfp.pipelines import EXAMPLES, compile_pipeline

EXAMPLE_DIRECTORY = ROOT / "examples/kfp"
VOLATILE = ("sdkVersion",)  # the KFP release that compiled it


def _compiled(tmp_path: Path, filename: str = "pipeline.yaml") -> dict[str, Any]:
    path = tmp_path / filename
    compile_pipeline(str(path), EXAMPLES[filename])
    return yaml.safe_load(path.read_text())


def _stable(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key not in VOLATILE}


@pytest.mark.parametrize("filename", EXAMPLES)
def test_each_committed_example_is_what_its_pipeline_compiles_to(tmp_path: Path, filename: str) -> None:
    committed = yaml.safe_load((EXAMPLE_DIRECTORY / filename).read_text())
    assert _stable(_compiled(tmp_path, filename)) == _stable(committed), (
        f"examples/kfp/{filename} is stale: python -m wharf.kfp.pipelines examples/kfp"
    )


def test_the_tasks_that_act_on_the_live_service_are_never_cached(tmp_path: Path) -> None:
    tasks = _compiled(tmp_path)["root"]["dag"]["tasks"]
    assert {name: task["cachingOptions"] for name, task in tasks.items()} == {
        "train-iris": {"enableCache": True},
        "store-model": {},
        "deploy-model": {},
        "check-accuracy": {},
        "gate-canary": {},
    }
    assert _compiled(tmp_path, "batch.yaml")["root"]["dag"]["tasks"]["run-batch"]["cachingOptions"] == {}


def test_the_components_run_on_the_wharf_image_and_take_no_token(tmp_path: Path) -> None:
    spec = _compiled(tmp_path)
    executors = spec["deploymentSpec"]["executors"].values()
    assert {executor["container"]["image"] for executor in executors} == {components.IMAGE}
    parameters = [
        name
        for component in spec["components"].values()
        for name in component.get("inputDefinitions", {}).get("parameters", {})
    ]
    assert "control_url" in parameters and not [name for name in parameters if "token" in name]
    deploy = spec["components"]["comp-deploy-model"]
    assert set(deploy["outputDefinitions"]["parameters"]) == {"revision", "url"}
    assert deploy["inputDefinitions"]["parameters"]["canary_traffic_percent"]["defaultValue"] == -1


def test_the_batch_example_scores_with_the_service_it_names(tmp_path: Path) -> None:
    spec = _compiled(tmp_path, "batch.yaml")
    task = spec["root"]["dag"]["tasks"]["run-batch"]["inputs"]["parameters"]
    assert task["model"]["runtimeValue"]["constant"] == "isvc/{{$.inputs.parameters['pipelinechannel--name']}}"
    assert task["name"] == {"componentInputParameter": "job"}
    run_batch = spec["components"]["comp-run-batch"]
    assert set(run_batch["outputDefinitions"]["parameters"]) == {"rows_done", "errors", "output"}
    assert not [name for name in run_batch["inputDefinitions"]["parameters"] if "token" in name]


def test_only_the_kfp_modules_import_kfp() -> None:
    modules = (
        "wharf, wharf.kfp, wharf.kfp.rollout, wharf.kfp.evaluation, wharf.kfp.store, wharf.kfp.batch, wharf.client"
    )
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kfp'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"
