"""The command line of a local replica."""

from __future__ import annotations

import sys

import click
import typer

from wharf.cli.main import app
from wharf.control.backends import ReplicaSpec
from wharf.control.backends.local import serve_command


def test_the_command_serves_on_free_local_ports() -> None:
    spec = ReplicaSpec("iris-00001", "iris", "/models/iris.joblib", "sklearn", {}, ("--max-batch-size", "8"))
    assert serve_command(spec) == [
        sys.executable, "-m", "wharf.cli", "serve", "--name", "iris",
        "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
        "--runtime", "sklearn", "--max-batch-size", "8", "--", "/models/iris.joblib",
    ]  # fmt: skip
    assert "--runtime" not in serve_command(ReplicaSpec("r", "m", "m.joblib"))


def test_a_uri_that_looks_like_an_option_is_the_model_uri() -> None:
    """The `wharf` command reads the argv (a fresh interpreter's, or the template's: both run command[3:]) with the
    URI as the model, not as `--workers=3`."""
    spec = ReplicaSpec("r", "m", "--workers=3", None, {}, ("--max-batch-size", "8"))
    argv = serve_command(spec)[3:]
    group = typer.main.get_command(app)
    serve = group.get_command(click.Context(group), argv[0])
    assert serve is not None
    params = serve.make_context("serve", argv[1:]).params
    assert params["model_uri"] == "--workers=3" and params["workers"] is None and params["max_batch_size"] == 8
