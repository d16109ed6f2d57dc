"""10,000 TrainedModels on one multi-model InferenceService: how long `wharf apply` and a list take, and how long
until every one is registered on both replicas (Ready).

    .venv/bin/python bench/trained_models.py [--models 10000] [--batch 1000]

It starts `wharf up` in a temporary home (WHARF_POLICY_MAX_DOCUMENTS raised to the batch), applies a parent with
two replicas and waits until it is ready, then applies the models in batches of `--batch` documents (each one
`wharf apply` of a multi-document text through the control API), lists them (the Kubernetes list, as `wharf get`
and kubectl read it), and waits until all are Ready (each registered, lazily, on a replica of the parent by the
daemon's resync passes). Every model names the same small scikit-learn artifact: nothing is loaded until a
request asks for it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from wharf.client.control import ControlClient

ROOT = Path(__file__).resolve().parents[1]
PARENT = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: mms}
spec:
  predictor:
    minReplicas: 2
    sklearn:
      resources: {limits: {memory: 1Gi}}
"""
MODEL = """apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata: {name: m%05d}
spec:
  inferenceService: mms
  model: {storageUri: %s, framework: sklearn, memory: 1Mi}
"""


def wait(what: str, check: object, timeout_s: float) -> float:
    began = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--ready-timeout", type=float, default=900.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        artifact = Path(tmp) / "iris.joblib"
        x, y = load_iris(return_X_y=True)
        joblib.dump(LogisticRegression(max_iter=500).fit(x, y), artifact)
        env = {
            **os.environ,
            "WHARF_HOME": str(home),
            "WHARF_GATEWAY_HTTP_PORT": "0",
            "WHARF_GATEWAY_GRPC_PORT": "0",
            "WHARF_CONTROL_PORT": "0",
            "WHARF_KUBE_PORT": "0",
            "WHARF_PROMETHEUS": "false",
            "WHARF_MONITOR_ENABLED": "false",
            "WHARF_POLICY_MAX_DOCUMENTS": str(args.batch),
        }
        log = open(Path(tmp) / "up.log", "w")  # noqa: SIM115 - closed after the daemon stops
        daemon = subprocess.Popen([sys.executable, "-m", "wharf.cli", "up"], env=env, stderr=log, cwd=tmp)
        try:
            wait("wharf up", lambda: (home / "daemon.json").exists(), 60)
            os.environ["WHARF_HOME"] = str(home)
            with ControlClient(timeout_s=600) as client:
                client.apply(PARENT)
                wait("the parent", lambda: _ready(client.get("isvc", "mms")), 120)
                texts = [
                    "---\n".join(MODEL % (i, artifact) for i in range(start, min(start + args.batch, args.models)))
                    for start in range(0, args.models, args.batch)
                ]
                began = time.perf_counter()
                for text in texts:
                    client.apply(text)
                applied = time.perf_counter() - began
                began = time.perf_counter()
                listed = client.list("tm")
                listing = time.perf_counter() - began
                assert len(listed) == args.models, len(listed)
                ready = wait(
                    "every model Ready",
                    lambda: sum(_ready(item) for item in client.list("tm")) == args.models,
                    args.ready_timeout,
                )
                began = time.perf_counter()
                client.list("tm")
                relisting = time.perf_counter() - began
            print(
                json.dumps(
                    {
                        "models": args.models,
                        "batch": args.batch,
                        "apply_s": round(applied, 2),
                        "apply_per_model_ms": round(1000 * applied / args.models, 3),
                        "list_s": round(listing, 2),
                        "all_ready_after_apply_s": round(ready + listing, 1),
                        "list_with_statuses_s": round(relisting, 2),
                    }
                )
            )
        finally:
            daemon.terminate()
            daemon.wait(60)
            log.close()


def _ready(item: dict[str, object]) -> bool:
    conditions = (item.get("status") or {}).get("conditions", [])  # type: ignore[union-attr]
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


if __name__ == "__main__":
    main()
