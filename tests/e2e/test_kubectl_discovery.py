"""The real kubectl against a real `wharf up`, through the kubeconfig it writes: discovery (`api-resources`, short
names), `explain` from the OpenAPI of the spec models, client-side validation naming an unknown field, KServe's
columns in `get`, and `wharf kubeconfig --viewer` as another kubeconfig that reads and may not write. One daemon
for the module."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Daemon, manifest, start_daemon
from tests.programs import program

KUBECTL = "kubectl"  # on PATH: `make test` installs it

UNKNOWN_FIELD = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: typo}
spec:
  predictor:
    minReplicas: 1
    bogusField: 3
    model: {modelFormat: {name: sklearn}, storageUri: /models/iris}
"""


@pytest.fixture(scope="module", autouse=True)
def _kubectl() -> None:
    program(KUBECTL, "kubectl")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("kubectl") / "home")
    try:
        yield running
    finally:
        running.stop()


def kubectl(
    daemon: Daemon, *args: str, config: Path | None = None, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl with the daemon's kubeconfig (or `config`), its discovery cached under the daemon's home only."""
    env = {**os.environ, "KUBECONFIG": str(config or daemon.home / "kubeconfig")}
    command = [str(KUBECTL), "--cache-dir", str(daemon.home / "kubectl-cache"), *args]
    run = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=env)
    if check and run.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


def test_api_resources_lists_kserves_kinds_by_their_short_names(daemon: Daemon) -> None:
    rows = {line.split()[0]: line.split() for line in kubectl(daemon, "api-resources").stdout.splitlines()[1:]}
    assert rows["inferenceservices"] == [
        "inferenceservices",
        "isvc",
        "serving.kserve.io/v1beta1",
        "true",
        "InferenceService",
    ]
    assert rows["inferencegraphs"] == ["inferencegraphs", "ig", "serving.kserve.io/v1alpha1", "true", "InferenceGraph"]
    kserve = kubectl(daemon, "api-resources", "--categories", "kserve", "-o", "name").stdout.split()
    assert sorted(kserve) == ["inferencegraphs.serving.kserve.io", "inferenceservices.serving.kserve.io"]


def test_explain_prints_the_spec_models_docs(daemon: Daemon) -> None:
    explained = kubectl(daemon, "explain", "isvc.spec.predictor").stdout
    assert "KIND:       InferenceService" in explained and "VERSION:    v1beta1" in explained
    assert "FIELD: predictor <PredictorSpec>" in explained
    assert "The predictor: exactly one of `model` or a framework shorthand" in " ".join(explained.split())
    assert "canaryTrafficPercent\t<integer>" in explained and "model\t<ModelSpec>" in explained


def test_apply_validates_on_the_client_naming_an_unknown_field(daemon: Daemon) -> None:
    refused = kubectl(
        daemon, "apply", "--dry-run=client", "--validate=strict", "-f", "-", stdin=UNKNOWN_FIELD, check=False
    )
    assert refused.returncode == 1
    assert 'unknown field "bogusField" in io.kserve.serving.v1beta1.PredictorSpec' in refused.stderr
    fine = UNKNOWN_FIELD.replace("    bogusField: 3\n", "")
    assert "created (dry run)" in kubectl(daemon, "apply", "--dry-run=client", "-f", "-", stdin=fine).stdout


def test_get_prints_kserves_columns_and_the_viewers_kubeconfig_only_reads(daemon: Daemon, tmp_path: Path) -> None:
    kubectl(daemon, "apply", "-f", "-", stdin=manifest("who", "first"))
    header, *rows = kubectl(daemon, "get", "isvc").stdout.splitlines()
    assert header.split() == [
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "PREVROLLEDOUTREVISION",
        "LATESTREADYREVISION",
        "AGE",
    ]
    assert rows[0].split()[:2] == ["who", "http://who.default.example.com"]
    assert kubectl(daemon, "get", "isvc", "-o", "wide").stdout.split()[8] == "MESSAGE"
    viewer = tmp_path / "viewer.yaml"
    viewer.write_text(daemon.wharf("kubeconfig", "--viewer").stdout)
    assert "Server Version: v1.32.0+wharf." in kubectl(daemon, "version", config=viewer).stdout
    assert (
        kubectl(daemon, "get", "isvc", "who", "-o", "name", config=viewer).stdout.strip()
        == "inferenceservice.serving.kserve.io/who"
    )
    refused = kubectl(daemon, "delete", "isvc", "who", config=viewer, check=False)
    assert refused.returncode == 1 and "Forbidden" in refused.stderr


def test_plain_http_carries_no_credentials_which_is_why_kubectl_gets_tls(daemon: Daemon) -> None:
    token = daemon.token
    refused = subprocess.run(
        [
            str(KUBECTL),
            "--server",
            daemon.control_url,
            "--token",
            token,
            "--cache-dir",
            str(daemon.home / "c2"),
            "get",
            "isvc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": "/dev/null"},
    )
    assert refused.returncode == 1 and "You must be logged in to the server" in refused.stderr
