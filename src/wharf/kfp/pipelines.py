"""Example pipelines of Wharf's components. `iris_canary`: train a scikit-learn classifier of the iris data set,
store it where the daemon reads it, deploy it as a canary of the `iris` InferenceService, measure its accuracy on the
rows held out of training by asking the canary alone through the gateway, and promote it when the accuracy meets the
threshold, else roll it back. `iris_batch`: score a file of iris measurements with the `iris` service as a BatchJob.

Compiled into examples/kfp/pipeline.yaml and examples/kfp/batch.yaml (`python -m wharf.kfp.pipelines examples/kfp`);
run them on this machine with KFP's local runner:

    from kfp import local
    from wharf.kfp.pipelines import iris_batch, iris_canary
    local.init(runner=local.SubprocessRunner(use_venv=False))
    iris_canary().outputs   # {'accuracy': 0.97..., 'metrics': Metrics(...), 'verdict': 'promoted', ...}
    iris_batch(input="/data/iris.csv", output="/data/scores").outputs   # {'rows_done': 150, 'errors': 0, ...}
"""

import sys
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics, Model, Output
from kfp.dsl.base_component import BaseComponent

from wharf.kfp.components import IMAGE, check_accuracy, deploy_model, gate_canary, run_batch, store_model


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_iris(model: Output[Model], held_out: Output[Dataset], test_fraction: float = 0.3, seed: int = 0):
    """Train a logistic regression on the iris data set, holding some rows out to check it with.

    Args:
        model: The classifier, saved with joblib.
        held_out: The rows kept out of training: a CSV file of the four measures and the label (the class index).
        test_fraction: The share of rows held out (stratified by class).
        seed: Which rows are held out.
    """
    import csv

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    train_x, test_x, train_y, test_y = train_test_split(
        iris.data, iris.target, test_size=test_fraction, random_state=seed, stratify=iris.target
    )
    joblib.dump(LogisticRegression(max_iter=1000).fit(train_x, train_y), model.path)
    with open(held_out.path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*iris.feature_names, "label"])
        writer.writerows([*row, label] for row, label in zip(test_x.tolist(), test_y.tolist()))


@dsl.pipeline(name="wharf-iris-canary")
def iris_canary(
    name: str = "iris",
    namespace: str = "default",
    canary_traffic_percent: int = 20,
    threshold: float = 0.9,
    seed: int = 0,
    model_store: str = "",
    control_url: str = "",
    gateway_url: str = "",
) -> NamedTuple("Outcome", accuracy=float, metrics=Metrics, verdict=str, revision=str):
    """Train an iris classifier, deploy it as a canary on Wharf, check its answers and promote it or roll it back.

    Args:
        name: The InferenceService.
        namespace: The InferenceService's namespace.
        canary_traffic_percent: The new revision's share of the traffic until it is promoted.
        threshold: The least accuracy on the held-out rows that is promoted.
        seed: Which rows are held out of training.
        model_store: Where models are stored for the daemon: a path on its machine, or an fsspec URL it reads;
            empty: WHARF_HOME/models.
        control_url: Wharf's control API; empty: found as the wharf CLI finds it (WHARF_HOME's daemon.json).
        gateway_url: Wharf's gateway; empty: WHARF_GATEWAY_URL, else the one in WHARF_HOME's daemon.json.
    """
    trained = train_iris(seed=seed)
    stored = store_model(model=trained.outputs["model"], directory=model_store, name=name)
    deployed = deploy_model(
        name=name,
        storage_uri=stored.output,
        namespace=namespace,
        canary_traffic_percent=canary_traffic_percent,
        control_url=control_url,
    )
    checked = check_accuracy(
        name=name,
        revision=deployed.outputs["revision"],
        rows=trained.outputs["held_out"],
        namespace=namespace,
        control_url=control_url,
        gateway_url=gateway_url,
    )
    gated = gate_canary(
        name=name,
        revision=deployed.outputs["revision"],
        metric=checked.outputs["Output"],
        threshold=threshold,
        namespace=namespace,
        control_url=control_url,
    )
    for task in (stored, deployed, checked, gated):
        task.set_caching_options(False)  # they act on, or read, what is live now
    outcome = NamedTuple("Outcome", accuracy=float, metrics=Metrics, verdict=str, revision=str)
    return outcome(checked.outputs["Output"], checked.outputs["metrics"], gated.output, deployed.outputs["revision"])


@dsl.pipeline(name="wharf-iris-batch")
def iris_batch(
    input: str,
    output: str,
    name: str = "iris",
    job: str = "iris-scores",
    namespace: str = "default",
    workers: int = 0,
    control_url: str = "",
) -> NamedTuple("Scores", rows_done=int, errors=int, output=str):
    """Score a file of iris measurements with the `iris` InferenceService, as a BatchJob on Wharf's daemon.

    Args:
        input: The measurements (CSV, Parquet, JSONL or NPY; a path or URI the daemon reads).
        output: Where the daemon writes the predictions.
        name: The InferenceService that predicts.
        job: The BatchJob (run afresh each time).
        namespace: The namespace of the service and the job.
        workers: Processes scoring chunks; 0: the daemon's cores.
        control_url: Wharf's control API; empty: found as the wharf CLI finds it (WHARF_HOME's daemon.json).
    """
    scored = run_batch(
        name=job,
        model=f"isvc/{name}",
        input=input,
        output=output,
        namespace=namespace,
        workers=workers,
        control_url=control_url,
    )
    scored.set_caching_options(False)  # it scores with the service live now
    outcome = NamedTuple("Scores", rows_done=int, errors=int, output=str)
    return outcome(scored.outputs["rows_done"], scored.outputs["errors"], scored.outputs["output"])


#: The compiled examples in examples/kfp, by file name.
EXAMPLES = {"pipeline.yaml": iris_canary, "batch.yaml": iris_batch}


def compile_pipeline(path: str, pipeline: BaseComponent = iris_canary) -> None:
    """Write `pipeline` as a KFP pipeline spec (YAML) to `path`."""
    compiler.Compiler().compile(pipeline, path)


if __name__ == "__main__":
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for filename, example in EXAMPLES.items():
        compile_pipeline(str(directory / filename), example)
