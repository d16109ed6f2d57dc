"""`wharf export` against a real `wharf up`: an InferenceService and an InferenceGraph read through the control API
and written for KServe (a YAML stream on standard output, or files and the runtime's Dockerfile with -o); the real
kubectl accepts them with `apply --dry-run=client` through the daemon's kubeconfig (discovery maps every kind, the
ClusterServingRuntime's included; the InferenceService and the graph are validated against the daemon's OpenAPI, so
a field it does not know is refused), and the runtime's container arguments start a real `wharf serve` of the model
laid out as KServe's storage initializer lays it out. One daemon for the module; the service scales from zero, so
no replica starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import iris_model, Daemon, start_daemon
from tests.processes import start
from tests.programs import program
from wharf.export import runtime

KUBECTL = "kubectl"  # on PATH: `make test` installs it
SERVE_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("export") / "home")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def model(daemon: Daemon) -> Path:
    return iris_model(daemon)


@pytest.fixture(scope="module")
def applied(daemon: Daemon, model: Path) -> None:
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "annotations": {"serving.wharf.dev/shadow-percent": "10"}},
        "spec": {"predictor": {"minReplicas": 0, "sklearn": {"storageUri": str(model)}}},
    }
    graph = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "flow"},
        "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "iris"}]}}},
    }
    daemon.wharf("apply", "-f", "-", stdin=yaml.safe_dump_all([service, graph]))


def kubectl(daemon: Daemon, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl with the daemon's kubeconfig, its discovery cached under the daemon's home only."""
    command = [program(KUBECTL, "kubectl"), "--cache-dir", str(daemon.home / "kubectl-cache"), *args]
    env = {**os.environ, "KUBECONFIG": str(daemon.home / "kubeconfig")}
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    if check and run.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


@pytest.mark.usefixtures("applied")
def test_a_service_exports_as_a_yaml_stream_with_its_runtime_and_warnings(daemon: Daemon) -> None:
    run = daemon.wharf("export", "isvc", "iris")
    csr, isvc = yaml.safe_load_all(run.stdout)
    assert (csr["kind"], csr["metadata"]["name"]) == ("ClusterServingRuntime", "wharf-sklearn")
    assert isvc["kind"] == "InferenceService" and "status" not in isvc
    assert isvc["metadata"] == {"name": "iris", "namespace": "default"}
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "wharf-sklearn"
    warnings = run.stderr.splitlines()
    assert (
        'warning: inferenceservice/iris: metadata.annotations["serving.wharf.dev/shadow-percent"] dropped'
        in (warnings[0])
    )
    assert "spec.predictor.model.storageUri" in warnings[1] and "a path on this machine" in warnings[1]


@pytest.mark.usefixtures("applied")
def test_kubectl_accepts_what_is_exported_and_refuses_a_field_kserve_lacks(daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "kserve"
    written = daemon.wharf("export", "isvc", "--all", "-o", str(out)).stdout.split()
    daemon.wharf("export", "ig", "flow", "-o", str(out))
    assert sorted(Path(p).name for p in written) == [
        "Dockerfile", "clusterservingruntime-wharf-sklearn.yaml", "inferenceservice-iris.yaml"
    ]  # fmt: skip
    assert 'ENTRYPOINT ["wharf", "serve"]' in (out / "Dockerfile").read_text()
    applied = kubectl(daemon, "apply", "--dry-run=client", "-f", str(out)).stdout.splitlines()
    assert sorted(applied) == [
        "clusterservingruntime.serving.kserve.io/wharf-sklearn created (dry run)",
        "inferencegraph.serving.kserve.io/flow configured (dry run)",  # they are on this daemon already
        "inferenceservice.serving.kserve.io/iris configured (dry run)",
    ]
    isvc = yaml.safe_load((out / "inferenceservice-iris.yaml").read_text())
    isvc["spec"]["predictor"]["model"]["bogus"] = 1
    (out / "inferenceservice-iris.yaml").write_text(yaml.safe_dump(isvc))
    refused = kubectl(daemon, "apply", "--dry-run=client", "-f", str(out / "inferenceservice-iris.yaml"), check=False)
    assert refused.returncode != 0 and 'unknown field "bogus" in io.kserve.serving.v1beta1.ModelSpec' in refused.stderr


@pytest.mark.usefixtures("applied")
def test_the_runtimes_arguments_start_wharf_serve_on_the_model_directory(daemon: Daemon, model: Path) -> None:
    csr = next(yaml.safe_load_all(daemon.wharf("export", "isvc", "iris").stdout))
    [container] = csr["spec"]["containers"]
    model_dir = daemon.home / "mnt-models"  # the storage initializer downloads the model file into the directory
    model_dir.mkdir()
    (model_dir / model.name).write_bytes(model.read_bytes())
    args = [
        arg.replace("{{.Name}}", "iris")  # what KServe fills in: the InferenceService's name
        .replace(runtime.MODEL_DIR, str(model_dir))
        .replace(f"={runtime.HTTP_PORT}", "=0")  # any free ports here
        .replace(f"={runtime.GRPC_PORT}", "=0")
        for arg in container["args"]
    ]
    entrypoint = [sys.executable, "-m", "wharf.cli", *runtime.ENTRYPOINT[1:]]  # `wharf serve`, as installed here
    proc, serving, _ = start([*entrypoint, *args], dict(os.environ), "serving", SERVE_TIMEOUT_S)
    try:
        assert serving["models"] == ["iris"]
        answer = httpx.post(
            f"http://127.0.0.1:{serving['http_port']}/v1/models/iris:predict",
            json={"instances": [[6.3, 3.3, 6.0, 2.5]]},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json() == {"predictions": [2]}
    finally:
        proc.terminate()
        proc.wait(30)


def test_what_cannot_be_exported_fails_naming_why(daemon: Daemon) -> None:
    bandit = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "arms"},
        "spec": {
            "nodes": {
                "root": {
                    "routerType": "Bandit",
                    "policy": "UCB1",
                    "steps": [{"serviceName": "a"}, {"serviceName": "b"}],
                }
            }
        },
    }
    daemon.wharf("apply", "-f", "-", stdin=yaml.safe_dump(bandit))
    refused = daemon.wharf("export", "ig", "arms", check=False)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("error: inferencegraph/arms: spec.nodes.root.routerType: Bandit is Wharf's router")
    missing = daemon.wharf("export", "isvc", "nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr and missing.stdout == ""
