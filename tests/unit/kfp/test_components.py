"""The KFP components and the example pipeline as KFP sees them: the committed compiled pipeline is current, the
tasks that act on the live service are never cached, no token is a parameter, and only wharf.kfp's KFP modules
import kfp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.processes import ROOT
from wharf.kfp import components
from wharf.kfp.pipelines import compile_pipeline

EXAMPLE = ROOT / "examples/kfp/pipeline.yaml"
VOLATILE = ("sdkVersion",)  # the KFP release that compiled it


def _compiled(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "pipeline.yaml"
    compile_pipeline(str(path))
    return yaml.safe_load(path.read_text())


def _stable(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key not in VOLATILE}


def test_the_committed_example_is_what_the_pipeline_compiles_to(tmp_path: Path) -> None:
    committed = yaml.safe_load(EXAMPLE.read_text())
    assert _stable(_compiled(tmp_path)) == _stable(committed), (
        "examples/kfp/pipeline.yaml is stale: python -m wharf.kfp.pipelines examples/kfp/pipeline.yaml"
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


def test_only_the_kfp_modules_import_kfp() -> None:
    modules = "wharf, wharf.kfp, wharf.kfp.rollout, wharf.kfp.evaluation, wharf.kfp.store, wharf.client"
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kfp'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"
