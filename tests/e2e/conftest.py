"""`wharf up` as a real daemon process, with the `wharf` CLI and the gateway reached over real sockets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import ROOT, start
from wharf.client.control import ControlClient

MODELS = ROOT / "tests/integration/models"
START_TIMEOUT_S = 60.0


@dataclass
class Daemon:
    proc: subprocess.Popen
    home: Path
    http_port: int
    grpc_port: int
    control_port: int
    log: list[str] = field(default_factory=list)

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def token(self) -> str:
        """The admin token `wharf up` keeps in its home."""
        return json.loads((self.home / "daemon.json").read_text())["token"]

    def control(self) -> httpx.Client:
        """An HTTP client of the control API that sends the admin token."""
        return httpx.Client(base_url=self.control_url, timeout=10, headers={"authorization": f"Bearer {self.token}"})

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wharf(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `wharf` CLI against this daemon."""
        run = subprocess.run(
            [sys.executable, "-m", "wharf.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WHARF_CONTROL_URL": self.control_url, "WHARF_HOME": str(self.home)},
            cwd=ROOT,
        )
        if check and run.returncode != 0:
            raise AssertionError(f"wharf {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
        return run

    def get(self, kind: str, name: str, namespace: str = "default") -> dict:
        """The resource `kind`/`name`, as `wharf get KIND NAME -o json` prints it, read through the control client
        in this process (a CLI process per poll cost about 0.9 s of CPU; the CLI has tests of its own)."""
        with ControlClient(self.control_url, token=self.token) as client:
            return client.get(kind, name, namespace)

    def isvc(self, name: str) -> dict:
        return self.get("isvc", name)

    def wait(
        self,
        name: str,
        condition: Callable[[dict], bool],
        timeout: float = 60.0,
        kind: str = "isvc",
        namespace: str = "default",
    ) -> dict:
        """The resource `kind`/`name` once `condition` holds of it (polled every 0.25 s); after `timeout` seconds,
        an AssertionError showing how it stood and the daemon's last log lines."""
        deadline = time.monotonic() + timeout
        while not condition(found := self.get(kind, name, namespace)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{kind} {namespace}/{name} did not reach the expected state:\n{json.dumps(found, indent=1)}\n"
                    f"{''.join(self.log[-30:])}"
                )
            time.sleep(0.25)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def ready(resource: dict) -> bool:
    """Whether a resource's status has the condition Ready True."""
    conditions = resource.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def iris_model(daemon: Daemon) -> Path:
    """An iris LogisticRegression in `daemon`'s models directory (where its policy lets models load from)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, species = load_iris(return_X_y=True)
    path = daemon.home / "models" / "iris.joblib"
    path.parent.mkdir(exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, species), path)
    return path


def start_daemon(home: Path, gateway_ports: tuple[int, int] = (0, 0), env: dict[str, str] | None = None) -> Daemon:
    """`wharf up` on `home`, the gateway on `gateway_ports` (HTTP, gRPC; 0: any free port), with `env` added to
    its environment."""
    env = {
        **os.environ,
        "WHARF_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(MODELS), str(ROOT)]),
        "WHARF_SCALE_TO_ZERO_GRACE_S": "1",  # Knative's 30 s is long for a test
        "WHARF_MONITOR_ENABLED": "false",  # the tests of the monitor turn it on (it takes a second to start)
        "WHARF_MONITOR_PORT": "0",
        "WHARF_KUBE_PORT": "0",  # kubectl's TLS port: any free one (WHARF_HOME/kubeconfig names it)
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "wharf.cli",
        "up",
        "--gateway-port",
        str(gateway_ports[0]),
        "--gateway-grpc-port",
        str(gateway_ports[1]),
        "--control-port",
        "0",
    ]
    proc, event, lines = start(command, env, "wharf is up", START_TIMEOUT_S)
    return Daemon(proc, home, event["http_port"], event["grpc_port"], event["control_port"], lines)


def _leftover_pids(under: Path) -> list[int]:
    """The processes still running for daemons whose WHARF_HOME lies under `under`: gateways, monitors, replicas
    started as `wharf serve`, replica templates and the replicas forked from them (whose command line is the
    template's)."""
    command = "wharf.cli gateway|wharf.cli monitor|wharf.cli serve|wharf.control.backends.zygote"
    found = subprocess.run(["pgrep", "-f", command], capture_output=True, text=True).stdout.split()
    pids = []
    for pid in map(int, found):
        try:
            if f"WHARF_HOME={under}" in open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"):
                pids.append(pid)
        except OSError:
            pass
    return pids


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a test's daemons left running (a daemon the test killed, one that failed to stop) is gone after it."""
    yield
    for pid in _leftover_pids(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:  # a replica leads its own session
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A `wharf up` on free ports with its own WHARF_HOME; every process it started is gone afterwards."""
    running = start_daemon(tmp_path / "home")
    yield running
    running.stop()


def manifest(
    name: str,
    who: str,
    *,
    canary: int | None = None,
    annotations: dict[str, str] | None = None,
    predictor: dict[str, int] | None = None,
    sleep_s: float = 0.0,
) -> str:
    """An InferenceService serving the WhoAmI test model, which answers with `who` after `sleep_s`; `predictor`
    adds fields such as minReplicas."""
    lines = [
        "apiVersion: serving.kserve.io/v1beta1",
        "kind: InferenceService",
        "metadata:",
        f"  name: {name}",
    ]
    if annotations:
        lines.append("  annotations:")
        lines += [f'    {key}: "{value}"' for key, value in annotations.items()]
    lines += ["spec:", "  predictor:"]
    if canary is not None:
        lines.append(f"    canaryTrafficPercent: {canary}")
    lines += [f"    {field}: {value}" for field, value in (predictor or {}).items()]
    lines += [
        "    model:",
        "      modelFormat: {name: custom}",
        "      storageUri: wharf_test_models:WhoAmI",
        f"      env: [{{name: WHO, value: {who}}}, {{name: SLEEP, value: '{sleep_s}'}}]",
    ]
    return "\n".join(lines) + "\n"


def who_answers(daemon: Daemon, host: str, count: int, headers: dict[str, str] | None = None) -> list[str]:
    """Ask the service at `host` through the gateway `count` times; the answers' `who` values."""
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    model = host.split(".")[0].removeprefix("latest-").removeprefix("prev-")
    answers = []
    with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": host, **(headers or {})}) as client:
        for _ in range(count):
            answer = client.post(f"/v2/models/{model}/infer", json=body)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["outputs"][0]["data"][0])
    return answers


def custom_service(
    name: str, storage_uri: str, *, namespace: str = "default", protocol: str = "v1", env: dict[str, str] | None = None
) -> str:
    """An InferenceService (a YAML document) serving the custom model class `storage_uri` over `protocol`, with
    `env` in its environment."""
    model = {
        "modelFormat": {"name": "custom"},
        "protocolVersion": protocol,
        "storageUri": storage_uri,
        "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
    }
    spec = {"predictor": {"model": model}}
    return _document("serving.kserve.io/v1beta1", "InferenceService", {"name": name, "namespace": namespace}, spec)


def graph(name: str, router: str, *steps: dict[str, Any], nodes: dict[str, Any] | None = None) -> str:
    """An InferenceGraph (a YAML document) whose root node routes with `router` (Sequence, Switch, Ensemble,
    Splitter) over `steps`, each a step's fields as KServe names them; `nodes` adds other nodes by name."""
    spec = {"nodes": {"root": {"routerType": router, "steps": list(steps)}, **(nodes or {})}}
    return _document("serving.kserve.io/v1alpha1", "InferenceGraph", {"name": name}, spec)


def _document(api_version: str, kind: str, metadata: dict[str, str], spec: dict[str, Any]) -> str:
    document = {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}
    return "---\n" + yaml.safe_dump(document, sort_keys=False)
