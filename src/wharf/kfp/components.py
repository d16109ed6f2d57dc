"""Kubeflow Pipelines (KFP v2) components that roll models out on Wharf: store a model where the daemon reads it,
deploy it as an InferenceService (as a canary when asked) and wait until its new revision is ready, measure that
revision's answers through the gateway, and promote it or roll it back on the measure; and run a batch prediction
as a BatchJob on the daemon.

They are lightweight Python components: each body imports Wharf and calls the plain functions of `wharf.kfp.rollout`,
`wharf.kfp.evaluation`, `wharf.kfp.store` and `wharf.kfp.batch` (clients of the control API and the gateway through Wharf's SDK), so they need an image with `wharf[kfp]` and the model's framework
installed (`IMAGE`, built by examples/kfp/Dockerfile; `task.set_container_image(...)` names another). KFP's local
runner (`kfp.local.SubprocessRunner(use_venv=False)`) runs them in the current Python environment instead.

How they reach Wharf: no token is a parameter (a pipeline's spec would show it). Without `control_url` or
`gateway_url` they find the daemon as the `wharf` CLI does: WHARF_CONTROL_URL, WHARF_GATEWAY_URL and WHARF_TOKEN,
else the `daemon.json` that `wharf up` writes in WHARF_HOME; on a cluster, set those variables on the tasks (the
token from a Kubernetes secret).

Each component that changes or reads the live service has KFP's caching off where it is used (see
`wharf.kfp.pipelines`): a cached deploy would skip the deployment.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

import wharf

IMAGE = f"wharf:{wharf.__version__}"  # wharf[kfp,sklearn] on python:3.11-slim: examples/kfp/Dockerfile


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def store_model(model: Input[Model], name: str, directory: str = "", filename: str = "model.joblib") -> str:
    """Copy a model to where Wharf's daemon reads it, addressed by its content.

    Args:
        model: The model: a file, or a directory.
        name: The folder of this model's versions under `directory` (the service's name, say).
        directory: A local path on the daemon's machine, or an fsspec URL it reads (s3://..., gs://...); empty:
            WHARF_HOME/models, where the daemon's policy lets local models load from.
        filename: The model's name in its version's folder; its suffix tells Wharf's runtime the format.

    Returns:
        The storageUri to deploy: DIRECTORY/NAME/DIGEST/FILENAME.
    """
    from wharf.kfp.store import store

    return store(model.path, directory, name, filename)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_model(
    name: str,
    storage_uri: str,
    model_format: str = "sklearn",
    namespace: str = "default",
    canary_traffic_percent: int = -1,
    protocol_version: str = "v1",
    timeout_s: float = 300.0,
    control_url: str = "",
) -> NamedTuple("Deployed", revision=str, url=str):
    """Create or update an InferenceService serving a model, and wait until its new revision is ready.

    Args:
        name: The InferenceService.
        storage_uri: Where the model is (a path on the daemon's machine, s3://..., gs://..., https://...).
        model_format: The predictor's modelFormat name (sklearn, xgboost, lightgbm, onnx, ...).
        namespace: The InferenceService's namespace.
        canary_traffic_percent: 1 to 100: the new revision's share of the traffic, the revision rolled out before
            keeping the rest until a promotion; -1: all of it once ready.
        protocol_version: v1 or v2.
        timeout_s: How long the new revision may take to become ready; a replica that fails to start fails sooner.
        control_url: The control API; empty: found as the wharf CLI finds it.

    Returns:
        revision: The revision serving the model. url: The service's URL.
    """
    from wharf.kfp.rollout import deploy, service_manifest

    manifest = service_manifest(
        name,
        storage_uri,
        model_format,
        namespace=namespace,
        canary_traffic_percent=canary_traffic_percent,
        protocol_version=protocol_version,
    )
    deployed = deploy(manifest, timeout_s=timeout_s, control_url=control_url)
    return NamedTuple("Deployed", revision=str, url=str)(deployed.revision, deployed.url)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_accuracy(
    name: str,
    revision: str,
    rows: Input[Dataset],
    metrics: Output[Metrics],
    namespace: str = "default",
    label_column: str = "label",
    batch_size: int = 64,
    control_url: str = "",
    gateway_url: str = "",
) -> float:
    """Measure one revision's accuracy on labelled rows, asking it through Wharf's gateway.

    Args:
        name: The InferenceService.
        revision: The revision to ask (deploy_model's revision), whatever its share of the traffic.
        rows: A CSV file with a header: the label in `label_column`, the features (numbers) in the others.
        metrics: Where the accuracy is logged as the metric `accuracy`.
        namespace: The InferenceService's namespace.
        label_column: The column holding each row's expected prediction.
        batch_size: Rows per request.
        control_url: The control API; empty: found as the wharf CLI finds it.
        gateway_url: The gateway; empty: WHARF_GATEWAY_URL, else the one of the daemon in WHARF_HOME.

    Returns:
        The share of rows predicted as labelled.
    """
    from wharf.kfp.evaluation import accuracy, predictions, read_labelled_rows

    labelled = read_labelled_rows(rows.path, label_column)
    answers = predictions(
        name,
        revision,
        labelled.features,
        namespace=namespace,
        control_url=control_url,
        gateway_url=gateway_url,
        batch_size=batch_size,
    )
    value = accuracy(answers, labelled.labels)
    metrics.log_metric("accuracy", value)
    return value


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate_canary(
    name: str,
    revision: str,
    metric: float,
    threshold: float,
    namespace: str = "default",
    control_url: str = "",
) -> str:
    """Promote a revision when its metric meets a threshold, else roll it back.

    Args:
        name: The InferenceService.
        revision: The revision measured; refused if the service has a newer one since.
        metric: The revision's measure (higher is better).
        threshold: The least measure promoted.
        namespace: The InferenceService's namespace.
        control_url: The control API; empty: found as the wharf CLI finds it.

    Returns:
        "promoted" (all traffic to the revision) or "rolled back" (its traffic to the one rolled out before).
    """
    from wharf.kfp.rollout import gate

    return gate(name, revision, metric, threshold, namespace=namespace, control_url=control_url)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def run_batch(
    name: str,
    model: str,
    input: str,
    output: str,
    namespace: str = "default",
    workers: int = 0,
    batch_size: int = 0,
    chunk_rows: int = 0,
    outputs: list = [],
    keep: list = [],
    id_column: str = "",
    timeout_s: float = 600.0,
    control_url: str = "",
) -> NamedTuple("Scored", rows_done=int, errors=int, output=str):
    """Run a batch prediction as a BatchJob on Wharf's daemon (`wharf batch`) and wait until it ends.

    Args:
        name: The BatchJob; a job of this name, finished or running, is deleted first so that each run scores anew.
        model: An artifact path or URI the daemon reads, or isvc/NAME: an InferenceService of the namespace.
        input: A file, a directory of parts, or a URI (CSV, Parquet, JSONL, NPY), read by the daemon.
        output: Where the daemon writes the prediction parts and the manifest (not the input).
        namespace: The BatchJob's namespace.
        workers: Processes scoring chunks; 0: the daemon's cores.
        batch_size: Rows per predict call; 0: wharf batch's default.
        chunk_rows: Rows per chunk (each written to a part of its own); 0: wharf batch's default.
        outputs: The model outputs written; empty: all.
        keep: Input columns copied to the output.
        id_column: The input column that identifies a row; empty: the row's position.
        timeout_s: How long the job may run; a job that fails fails the task with its message.
        control_url: The control API; empty: found as the wharf CLI finds it.

    Returns:
        rows_done: The rows predicted. errors: The bad rows set aside (OUTPUT/errors.jsonl). output: The output.
    """
    from wharf.kfp.batch import job_manifest, run

    manifest = job_manifest(
        name,
        model,
        input,
        output,
        namespace=namespace,
        workers=workers,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        outputs=[str(column) for column in outputs],
        keep=[str(column) for column in keep],
        id_column=id_column,
    )
    scored = run(manifest, timeout_s=timeout_s, control_url=control_url)
    return NamedTuple("Scored", rows_done=int, errors=int, output=str)(scored.rows_done, scored.errors, scored.output)
