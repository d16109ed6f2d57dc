"""Explanations through `wharf up`'s gateway: tree SHAP and Kernel SHAP of one row, over V1 and V2, beside their
floors (the same shap call in this process; the predictor's own predict, through the gateway and in this process).

    .venv/bin/python bench/explain.py [--requests 200] [--kernel-requests 10] [--n-samples N] [--protocol v1|v2]

A `wharf up` of its own (temporary WHARF_HOME, free ports, stopped by PID at the end) serves a 100-tree
RandomForestClassifier on 10 features (make_classification, seeded) twice: `tree` with `explainer.shap.type: Tree`
and `kernel` with `type: Kernel` (default nSamples unless --n-samples), both with the same 100 background rows (as
many as the default sampleSize, so the explainer uses them all). One keep-alive httpx client sends the requests one
after another, each with one held-out row: V1 `:explain` and V2 `/explain`, and V1 `:predict` and V2 `/infer` to
the predictor. The floors in this process: `shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent")
.shap_values(row)` (what the explainer computes for a scikit-learn forest) and `shap.KernelExplainer(predict_proba,
background).shap_values(row, nsamples=nSamples, l1_reg=False)`, seeded as the explainer seeds it, and the forest's
`predict_proba(row)`. Before measuring,
each protocol's answer is checked against the library's values. A Kernel explanation's cost is its model rows:
counted in this process, and the predictor's calls and time read from its replica's /metrics over the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import shap
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.conftest import Daemon, _leftover_pids, ready, start_daemon  # noqa: E402

FEATURES = 10
TREES = 100
BACKGROUND = 100  # = the default sampleSize: the explainer keeps every row
DEFAULT_N_SAMPLES = 256  # SHAPExplainerSpec's default, which the kernel service leaves unset
SEED = 0
TIMEOUT_S = 120.0
TREE_TARGET_MS = 20.0
#: What each measured call is, the first of its labels being its floor (in this process).
KINDS = ("tree", "predict", "kernel")


def train(where: Path) -> tuple[RandomForestClassifier, np.ndarray, np.ndarray]:
    """The forest (saved as forest.joblib), the background rows (background.csv, with a header) and held-out rows."""
    x, y = make_classification(1200, FEATURES, n_informative=6, random_state=SEED)
    forest = RandomForestClassifier(TREES, random_state=SEED, n_jobs=1).fit(x[:1000], y[:1000])
    joblib.dump(forest, where / "forest.joblib")
    background = x[:BACKGROUND]
    header = ",".join(f"f{i}" for i in range(FEATURES))
    np.savetxt(where / "background.csv", background, delimiter=",", header=header, comments="")
    return forest, background, x[1000:]


def manifest(name: str, where: Path, protocol: str, shap_fields: dict[str, Any]) -> str:
    model = {
        "modelFormat": {"name": "sklearn"},
        "protocolVersion": protocol,
        "storageUri": str(where / "forest.joblib"),
    }
    fields = {"storageUri": str(where / "background.csv"), **shap_fields}
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: {name}}}\nspec:\n"
        f"  predictor:\n    model: {json.dumps(model)}\n  explainer:\n    shap: {json.dumps(fields)}\n"
    )


class Calls:
    """One keep-alive client of the gateway; each method sends one row and returns the answer's JSON."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _post(self, name: str, path: str, body: dict[str, Any]) -> Any:
        answer = self.client.post(path, json=body, headers={"host": f"{name}.default.example.com"})
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def v1(self, name: str, verb: str, row: np.ndarray) -> Any:
        return self._post(name, f"/v1/models/{name}:{verb}", {"instances": [row.tolist()]})

    def v2(self, name: str, verb: str, row: np.ndarray) -> Any:
        tensor = {"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64", "data": row.tolist()}
        return self._post(name, f"/v2/models/{name}/{verb}", {"inputs": [tensor]})

    def metrics(self, host: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The Prometheus samples answered at `host`'s /metrics, by (name, sorted labels)."""
        text = self.client.get("/metrics", headers={"host": host}).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def contributions_v1(answer: dict[str, Any]) -> np.ndarray:
    return np.asarray(answer["explanations"][0]["contributions"])


def contributions_v2(answer: dict[str, Any]) -> np.ndarray:
    found = next(o for o in answer["outputs"] if o["name"] == "contributions")
    return np.asarray(found["data"]).reshape(found["shape"])[0]


def timed(call: Callable[[np.ndarray], Any], rows: np.ndarray, count: int) -> list[float]:
    """Milliseconds of `count` calls, one row each (cycling through `rows`)."""
    spent = []
    for i in range(count):
        row = rows[i % len(rows)]
        began = time.perf_counter()
        call(row)
        spent.append((time.perf_counter() - began) * 1000)
    return spent


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def kernel_in_process(forest: RandomForestClassifier, background: np.ndarray, n_samples: int) -> Any:
    """shap's KernelExplainer of the forest's probabilities, and a counter of the model rows it evaluates."""
    counted = [0]

    def model(rows: np.ndarray) -> np.ndarray:
        counted[0] += len(rows)
        return forest.predict_proba(rows)

    explainer = shap.KernelExplainer(model, background)

    def explain(row: np.ndarray) -> np.ndarray:
        np.random.seed(SEED)  # the explainer seeds each explanation so
        return explainer.shap_values(row[np.newaxis, :], nsamples=n_samples, l1_reg=False, silent=True)[0]

    return explain, counted


def predictor_figures(calls: Calls, model: str) -> tuple[float, float]:
    """(requests answered, seconds spent on them) by the predictor of `model`, from its replica's /metrics."""
    samples = calls.metrics(f"{model}-predictor.default.example.com")
    count = sum(v for (n, labels), v in samples.items() if n == "wharf_requests_total" and ("model", model) in labels)
    seconds = sum(
        v
        for (n, labels), v in samples.items()
        if n == "wharf_request_duration_seconds_sum" and ("model", model) in labels
    )
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="tree SHAP and predict requests per protocol")
    parser.add_argument("--kernel-requests", type=int, default=10, help="Kernel SHAP requests per protocol")
    parser.add_argument("--n-samples", type=int, default=None, help="the kernel service's nSamples (default: unset)")
    parser.add_argument(
        "--protocol", choices=("v1", "v2"), default="v1", help="the predictors' protocolVersion (sklearn's default v1)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    n_samples = args.n_samples or DEFAULT_N_SAMPLES
    kernel_fields: dict[str, Any] = {"type": "Kernel", **({"nSamples": args.n_samples} if args.n_samples else {})}
    with tempfile.TemporaryDirectory(prefix="wharf-bench-explain-") as tmp:
        where = Path(tmp)
        forest, background, rows = train(where)
        daemon = start_daemon(where / "home", env={"WHARF_POLICY_STORAGE_ROOTS": json.dumps([str(where)])})
        try:
            daemon.wharf("apply", "-f", "-", stdin=manifest("tree", where, args.protocol, {"type": "Tree"}))
            daemon.wharf("apply", "-f", "-", stdin=manifest("kernel", where, args.protocol, kernel_fields))
            for name in ("tree", "kernel"):
                daemon.wait(name, ready, timeout=TIMEOUT_S)
            with httpx.Client(base_url=daemon.gateway_url, timeout=TIMEOUT_S) as client:
                results = measure(
                    Calls(client), forest, background, rows, args.requests, args.kernel_requests, n_samples
                )
        finally:
            stop(daemon, where)
    report(results, args.protocol, n_samples)
    print(f"load average before: {loads(load_before)}; after: {loads(os.getloadavg())}")


def loads(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in averages)


def measure(
    calls: Calls,
    forest: RandomForestClassifier,
    background: np.ndarray,
    rows: np.ndarray,
    n: int,
    k: int,
    n_samples: int,
) -> dict[str, Any]:
    """Each call's milliseconds by label, and the Kernel explanations' model rows and predictor calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent")
    tree_alone = lambda row: tree.shap_values(row[np.newaxis, :], check_additivity=False)  # noqa: E731
    kernel_alone, counted = kernel_in_process(forest, background, n_samples)

    # The answers first: each protocol's contributions are the library's.
    row = rows[0]
    expected = tree_alone(row)[0]
    for got in (contributions_v1(calls.v1("tree", "explain", row)), contributions_v2(calls.v2("tree", "explain", row))):
        np.testing.assert_allclose(got, expected, atol=1e-9)
    expected = kernel_alone(row)
    for got in (
        contributions_v1(calls.v1("kernel", "explain", row)),
        contributions_v2(calls.v2("kernel", "explain", row)),
    ):
        np.testing.assert_allclose(got, expected, atol=1e-6)

    warm = min(20, n)
    found: dict[str, list[float]] = {}
    for label, call, count in (
        ("tree: shap alone, in process", tree_alone, n),
        ("predict: the forest alone, in process", lambda r: forest.predict_proba(r[np.newaxis, :]), n),
        ("tree: V1 :explain", lambda r: calls.v1("tree", "explain", r), n),
        ("tree: V2 /explain", lambda r: calls.v2("tree", "explain", r), n),
        ("predict: V1 :predict", lambda r: calls.v1("tree", "predict", r), n),
        ("predict: V2 /infer", lambda r: calls.v2("tree", "infer", r), n),
    ):
        timed(call, rows, warm)
        found[label] = timed(call, rows, count)

    counted[0] = 0
    found["kernel: shap alone, in process"] = timed(kernel_alone, rows, k)
    rows_per_explanation = counted[0] / k
    before = predictor_figures(calls, "kernel")
    found["kernel: V1 :explain"] = timed(lambda r: calls.v1("kernel", "explain", r), rows, k)
    found["kernel: V2 /explain"] = timed(lambda r: calls.v2("kernel", "explain", r), rows, k)
    after = predictor_figures(calls, "kernel")
    predictor_calls = (after[0] - before[0]) / (2 * k)
    predictor_ms = (after[1] - before[1]) / max(after[0] - before[0], 1) * 1000
    return {
        "times": found,
        "rows_per_explanation": rows_per_explanation,
        "predictor_calls": predictor_calls,
        "predictor_ms": predictor_ms,
    }


def stop(daemon: Daemon, under: Path) -> None:
    """Stop the daemon by its PID, then whatever it left running under `under` (as the e2e tests' fixture does)."""
    daemon.stop()
    for pid in _leftover_pids(under):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)


def report(results: dict[str, Any], protocol: str, n_samples: int) -> None:
    times = results["times"]
    median = {label: statistics.median(spent) for label, spent in times.items()}
    floors = {kind: median[next(label for label in times if label.startswith(kind))] for kind in KINDS}
    predict = median["predict: V1 :predict"]
    print(
        f"RandomForestClassifier, {TREES} trees, {FEATURES} features; background {BACKGROUND} rows; Kernel nSamples "
        f"{n_samples}; predictors' protocolVersion {protocol}; one row per request, sequential, one keep-alive client"
    )
    print(f"{'ms':38} {'n':>4} {'p50':>8} {'p99':>8} {'p50 / in process':>17} {'p50 - predict V1':>17}")
    for label, spent in times.items():
        kind = label.partition(":")[0]
        over = f"{median[label] - predict:+.2f}" if kind != "predict" else ""
        print(
            f"{label:38} {len(spent):4} {p(spent, 50):8.2f} {p(spent, 99):8.2f} "
            f"{median[label] / floors[kind]:16.2f}x {over:>17}"
        )
    worst = max(median[f"tree: {v}"] for v in ("V1 :explain", "V2 /explain"))
    verdict = "met" if worst < TREE_TARGET_MS else "NOT met"
    print(f"target: tree SHAP one row p50 < {TREE_TARGET_MS:.0f} ms through the gateway: {verdict} ({worst:.2f} ms)")
    print(
        f"Kernel: {results['rows_per_explanation']:.0f} model rows per explanation (bound: nSamples x background + "
        f"the row = {n_samples * BACKGROUND + 1}); {results['predictor_calls']:.2f} predictor calls per explanation, "
        f"{results['predictor_ms']:.1f} ms each in the predictor (its /metrics)"
    )


if __name__ == "__main__":
    main()
