"""The real kubectl driving InferenceServices on a real `wharf up`, through the kubeconfig it writes: apply
(client-side and server-side, with a conflict and --force-conflicts), get (KServe's columns, -o yaml, -o json, label
selectors), get -w seeing the Ready transition, wait, patch --type merge of canaryTrafficPercent, the refusals an API
server gives (strategic merge, a stale resourceVersion, an invalid name) and delete. One daemon for the module; the
iris model is trained into the daemon's models directory and named by an absolute path (kubectl sends no base directory)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import iris_model, Daemon, start_daemon
from tests.programs import program

KUBECTL = "kubectl"  # on PATH: `make test` installs it
READY = '{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}'


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


@pytest.fixture(scope="module")
def model(daemon: Daemon) -> Path:
    return iris_model(daemon)


def iris(name: str, model: Path, *, canary: int | None = None, labels: dict[str, str] | None = None) -> str:
    """An InferenceService of the iris model, written with KServe's `sklearn:` shorthand."""
    predictor: dict[str, object] = {"sklearn": {"storageUri": str(model)}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    metadata = {"name": name, "labels": labels or {"app": "iris"}}
    document = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata}
    return yaml.safe_dump({**document, "spec": {"predictor": predictor}})


def _env(daemon: Daemon) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(daemon.home / "kubeconfig")}


def kubectl(
    daemon: Daemon, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl with the daemon's kubeconfig, its discovery cached under the daemon's home only."""
    command = [str(KUBECTL), "--cache-dir", str(daemon.home / "kubectl-cache"), *args]
    run = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=_env(daemon))
    if check and run.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


def test_apply_get_and_wait(daemon: Daemon, model: Path) -> None:
    assert (
        "inferenceservice.serving.kserve.io/iris created"
        in kubectl(daemon, "apply", "-f", "-", stdin=iris("iris", model)).stdout
    )
    kubectl(daemon, "wait", "--for=condition=Ready", "isvc/iris", "--timeout=60s")
    header, row = kubectl(daemon, "get", "isvc").stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "URL", "READY", "PREV", "LATEST"] and header.split()[-1] == "AGE"
    assert row.split()[:3] == ["iris", "http://iris.default.example.com", "True"]

    shown = yaml.safe_load(kubectl(daemon, "get", "isvc", "iris", "-o", "yaml").stdout)
    metadata = shown["metadata"]
    assert metadata["uid"] and metadata["generation"] == 1 and metadata["creationTimestamp"].endswith("Z")
    assert int(metadata["resourceVersion"]) > 0 and metadata["labels"] == {"app": "iris"}
    assert shown["spec"]["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}  # the shorthand, as KServe
    as_json = json.loads(kubectl(daemon, "get", "isvc", "iris", "-o", "json").stdout)
    assert as_json["metadata"]["uid"] == metadata["uid"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in as_json["status"]["conditions"])

    again = kubectl(daemon, "apply", "-f", "-", stdin=iris("iris", model)).stdout  # the shorthand again
    assert "inferenceservice.serving.kserve.io/iris" in again
    assert json.loads(kubectl(daemon, "get", "isvc", "iris", "-o", "json").stdout)["metadata"]["generation"] == 1
    assert "iris" in kubectl(daemon, "get", "isvc", "-l", "app=iris", "-o", "name").stdout
    assert kubectl(daemon, "get", "isvc", "-l", "app in (other),!canary", "-o", "name").stdout == ""


def test_get_watch_sees_the_ready_transition(daemon: Daemon, model: Path) -> None:
    command = [str(KUBECTL), "--cache-dir", str(daemon.home / "kubectl-cache"), "get", "isvc", "-w"]
    watch = subprocess.Popen(
        [*command, "-l", "app=watched", "-o", f"jsonpath={READY}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(daemon),
    )
    try:
        time.sleep(1.0)  # the watch is open before the service exists
        kubectl(daemon, "create", "-f", "-", stdin=iris("watched", model, labels={"app": "watched"}))
        assert watch.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not seen or seen[-1] != "watched True"):
            seen.append(watch.stdout.readline().strip())
        assert seen[0] != "watched True" and seen[-1] == "watched True", seen
    finally:
        watch.kill()
        watch.wait(10)


def test_patch_merge_and_server_side_apply(daemon: Daemon, model: Path) -> None:
    kubectl(daemon, "apply", "-f", "-", stdin=iris("rollout", model))
    patched = kubectl(
        daemon,
        "patch",
        "isvc",
        "rollout",
        "--type",
        "merge",
        "-p",
        '{"spec":{"predictor":{"canaryTrafficPercent":30}}}',
    )
    assert "inferenceservice.serving.kserve.io/rollout patched" in patched.stdout
    percent = "jsonpath={.spec.predictor.canaryTrafficPercent}"
    assert kubectl(daemon, "get", "isvc", "rollout", "-o", percent).stdout == "30"

    strategic = kubectl(daemon, "patch", "isvc", "rollout", "-p", '{"metadata":{"labels":{"a":"b"}}}', check=False)
    assert strategic.returncode != 0
    assert "application/merge-patch+json" in strategic.stderr and "application/apply-patch+yaml" in strategic.stderr

    conflicted = kubectl(
        daemon, "apply", "--server-side", "-f", "-", stdin=iris("rollout", model, canary=60), check=False
    )
    assert conflicted.returncode != 0 and 'conflict with "kubectl-patch"' in conflicted.stderr, conflicted.stderr
    assert ".spec.predictor.canaryTrafficPercent" in conflicted.stderr
    forced = kubectl(
        daemon, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=iris("rollout", model, canary=60)
    )
    assert "serverside-applied" in forced.stdout
    shown = json.loads(kubectl(daemon, "get", "isvc", "rollout", "-o", "json", "--show-managed-fields").stdout)
    assert shown["spec"]["predictor"]["canaryTrafficPercent"] == 60
    owners = {(m["manager"], m["operation"]): m["fieldsV1"] for m in shown["metadata"]["managedFields"]}
    assert "f:canaryTrafficPercent" in owners[("kubectl", "Apply")]["f:spec"]["f:predictor"]
    assert ("kubectl-patch", "Update") not in owners  # it had only canaryTrafficPercent, now kubectl's

    created = kubectl(daemon, "apply", "--server-side", "-f", "-", stdin=iris("applied", model))
    assert "inferenceservice.serving.kserve.io/applied serverside-applied" in created.stdout


def test_refusals_are_status_objects(daemon: Daemon, model: Path) -> None:
    missing = kubectl(daemon, "get", "isvc", "nope", check=False)
    assert "Error from server (NotFound): InferenceService default/nope not found" in missing.stderr
    bad_name = kubectl(daemon, "create", "-f", "-", stdin=iris("Bad_Name", model), check=False)
    assert "is invalid" in bad_name.stderr and "metadata.name" in bad_name.stderr

    kubectl(daemon, "apply", "-f", "-", stdin=iris("stale", model))
    stale = json.loads(kubectl(daemon, "get", "isvc", "stale", "-o", "json").stdout)
    kubectl(daemon, "patch", "isvc", "stale", "--type", "merge", "-p", '{"metadata":{"labels":{"v":"2"}}}')
    replaced = kubectl(daemon, "replace", "-f", "-", stdin=json.dumps(stale), check=False)
    assert "Error from server (Conflict)" in replaced.stderr and "the object has been modified" in replaced.stderr


def test_delete(daemon: Daemon, model: Path) -> None:
    kubectl(daemon, "apply", "-f", "-", stdin=iris("doomed", model))
    deleted = kubectl(daemon, "delete", "isvc", "doomed", "--timeout=30s")
    assert 'inferenceservice.serving.kserve.io "doomed" deleted' in deleted.stdout
    assert "NotFound" in kubectl(daemon, "get", "isvc", "doomed", check=False).stderr
    assert "doomed" not in daemon.wharf("get", "isvc").stdout  # one source of truth: Wharf's CLI reads the same
