"""wharf.export.runtime: the ClusterServingRuntime that runs Wharf's model server (formats with and without
versions, never auto-selected, KServe's arguments which `wharf serve` really takes) and the Dockerfile of its image
(the extras of its formats, a user that is not root, `wharf serve` as the entrypoint)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import typer.main

from wharf import __version__
from wharf.cli.main import app
from wharf.errors import ConfigurationError
from wharf.export import runtime
from wharf.model.runtimes import RUNTIMES

PYPROJECT = Path(__file__).parents[3] / "pyproject.toml"


def test_a_runtime_is_named_after_its_formats_and_runs_the_image_of_that_name() -> None:
    serving = runtime.serving_runtime([("xgboost", "2"), ("sklearn", None), ("xgboost", None), ("sklearn", None)])
    assert serving.name == "wharf-sklearn-xgboost" and serving.image == f"wharf-sklearn-xgboost:{__version__}"
    assert serving.formats == (("sklearn", None), ("xgboost", None), ("xgboost", "2"))
    assert serving.extras == ["sklearn", "xgboost"]


def test_the_cluster_serving_runtime_lists_each_format_and_each_version_never_auto_selected() -> None:
    manifest = runtime.cluster_serving_runtime(runtime.serving_runtime([("pytorch", None), ("xgboost", "2")]))
    assert (manifest["apiVersion"], manifest["kind"]) == ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
    assert manifest["metadata"]["name"] == "wharf-pytorch-xgboost" and "namespace" not in manifest["metadata"]
    spec = manifest["spec"]
    assert spec["supportedModelFormats"] == [
        {"name": "pytorch", "autoSelect": False},
        {"name": "xgboost", "autoSelect": False},
        {"name": "xgboost", "version": "2", "autoSelect": False},  # KServe matches name:version exactly
    ]
    assert spec["protocolVersions"] == ["v1", "v2", "grpc-v2"]
    [container] = spec["containers"]
    assert container["name"] == "kserve-container" and container["image"] == f"wharf-pytorch-xgboost:{__version__}"
    assert container["args"] == [
        "--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080", "--grpc_port=8081"
    ]  # fmt: skip
    assert container["securityContext"]["runAsNonRoot"] is True
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8080"


def test_the_runtimes_arguments_are_options_wharf_serve_takes() -> None:
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    args = [arg.replace("{{.Name}}", "iris") for arg in runtime.ARGS]
    params = serve.make_context("serve", args).params
    assert (params["model_dir"], params["name"], params["http_port"], params["grpc_port"]) == (
        runtime.MODEL_DIR, "iris", runtime.HTTP_PORT, runtime.GRPC_PORT
    )  # fmt: skip
    assert params["model_uri"] is None


def test_every_format_wharf_serves_has_an_extra_of_wharfs_package() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert runtime.EXTRAS.keys() == RUNTIMES.keys()
    assert set(runtime.EXTRAS.values()) <= extras.keys()


def test_the_dockerfile_installs_the_formats_extras_and_runs_wharf_serve_as_a_user() -> None:
    serving = runtime.serving_runtime([("onnx", None), ("sklearn", None)], image="registry.example.com/w:1")
    text = runtime.dockerfile(serving)
    instructions = [line.split(" ", 1) for line in text.replace("\\\n", "").splitlines() if line[:1].isupper()]
    assert [word for word, _ in instructions] == [
        "FROM", "ARG", "RUN", "USER", "WORKDIR", "ENV", "EXPOSE", "ENTRYPOINT"
    ]  # fmt: skip
    given = dict(instructions)
    assert re.fullmatch(r"python:3\.\d+-slim", given["FROM"])
    assert given["ARG"] == f'WHARF_REQUIREMENT="wharf[onnx,sklearn]=={__version__}"'
    assert 'pip install --no-cache-dir "$WHARF_REQUIREMENT"' in given["RUN"]
    assert f"useradd --uid {runtime.USER_ID}" in given["RUN"]
    assert given["USER"] == str(runtime.USER_ID) != "0"  # numeric: Kubernetes checks runAsNonRoot by the id
    assert given["ENV"] == "WHARF_HOST=0.0.0.0"
    assert given["EXPOSE"] == f"{runtime.HTTP_PORT} {runtime.GRPC_PORT}"
    assert given["ENTRYPOINT"] == '["wharf", "serve"]'
    assert "docker build -t registry.example.com/w:1 ." in text


def test_a_runtime_needs_a_format_wharfs_image_serves() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        runtime.serving_runtime([])
    with pytest.raises(ConfigurationError, match="not custom"):
        runtime.serving_runtime([("custom", None)])
