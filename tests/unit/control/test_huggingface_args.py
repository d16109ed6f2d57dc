"""KServe's Hugging Face arguments in an InferenceService: accepted for format huggingface, checked at apply (the
field and the reason named), allowed by the policy for that format only, passed on to the replica's command line,
and `--model_name` names the model served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wharf.control.backends.local import serve_command
from wharf.control.backends.replica import ReplicaSpec
from wharf.control.plan import service_plan
from wharf.control.policy import ManifestPolicy
from wharf.control.spec import SpecError, parse_manifest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("WHARF_HOME", raising=False)


def chat(args: list[str], model_format: str = "huggingface") -> dict[str, Any]:
    model = {"modelFormat": {"name": model_format}, "storageUri": "models/smol.gguf", "args": args}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "smol"},
        "spec": {"predictor": {"model": model}},
    }


KSERVE_ARGS = ["--task=text_generation", "--max_model_len", "512", "--dtype=float32", "--model_name=smollm2"]


def test_kserves_arguments_are_accepted_and_name_the_model_served() -> None:
    service = parse_manifest(chat(KSERVE_ARGS))
    assert service.model_name == "smollm2"
    assert ManifestPolicy().problems(service) == []
    assert parse_manifest(chat(["--task", "text-generation"])).model_name == "smol"  # none given: the service's
    shorthand = parse_manifest(
        {**chat([]), "spec": {"predictor": {"huggingface": {"storageUri": "m", "args": KSERVE_ARGS}}}}
    )
    assert shorthand.model_name == "smollm2"


@pytest.mark.parametrize(
    ("args", "where", "reason"),
    [
        (["--max_model_len=1"], 0, "--max_model_len '1' must be a whole number of tokens, at least 2"),
        (["--dtype", "int3"], 0, "--dtype 'int3' must be one of auto, float16, half, bfloat16, float32, float"),
        (["--task=Text Generation"], 0, "is no task name"),
        (["--task=a", "--task=b"], 1, "--task is given twice"),
        (["--model_name"], 0, "--model_name needs a value"),
        (["--model_name=a/b"], 0, "--model_name 'a/b' must be letters"),
        (["--model_id=HuggingFaceTB/SmolLM2-135M-Instruct"], 0, "never from the Hugging Face Hub"),
        (["--backend=vllm"], 0, "runs Hugging Face models with transformers"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(args: list[str], where: int, reason: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_manifest(chat(args))
    ((path, found),) = refused.value.problems
    assert path == f"spec.predictor.model.args[{where}]" and reason in found


def test_the_policy_allows_them_for_huggingface_only() -> None:
    found = dict(ManifestPolicy().problems(parse_manifest(chat(["--task=text_generation"], "sklearn"))))
    assert "args may give only --max-batch-size, --max-latency-ms" in found["spec.predictor.model.args[0]"]


def test_they_reach_the_replicas_command_line() -> None:
    replica = service_plan(chat(KSERVE_ARGS), "example.com").components["predictor"].replica
    spec = ReplicaSpec(
        "smol-1", replica["model_name"], replica["model_uri"], replica["runtime"], {}, tuple(replica["args"])
    )
    command = serve_command(spec)
    assert command[command.index("--name") + 1] == "smollm2"
    assert command[command.index("--runtime") + 1] == "huggingface"
    assert command[-len(KSERVE_ARGS) - 2 : -2] == KSERVE_ARGS and command[-2:] == ["--", "models/smol.gguf"]
