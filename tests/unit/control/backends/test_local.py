"""The command line of a local replica."""

from __future__ import annotations

import sys

from wharf.control.backends import ReplicaSpec
from wharf.control.backends.local import serve_command


def test_the_command_serves_on_free_local_ports() -> None:
    spec = ReplicaSpec("iris-00001", "iris", "/models/iris.joblib", "sklearn", {}, ("--max-batch-size", "8"))
    assert serve_command(spec) == [
        sys.executable, "-m", "wharf.cli", "serve", "/models/iris.joblib", "--name", "iris",
        "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
        "--runtime", "sklearn", "--max-batch-size", "8",
    ]  # fmt: skip
    assert "--runtime" not in serve_command(ReplicaSpec("r", "m", "m.joblib"))
