"""Checking a deployed revision's answers: labelled rows (a CSV file with a header, the label in one column and the
features in the others, in order) are sent through Wharf's gateway to one revision of a service (pinned with the
`x-wharf-revision` header, so a canary is measured alone whatever its share of the traffic), as KServe V1
`instances` in batches, and its predictions are compared with the labels.

The service's host and the gateway come from Wharf's SDK (`wharf.Wharf`), which finds the daemon as the
`wharf` CLI does (WHARF_HOME's `daemon.json` names the gateway; WHARF_GATEWAY_URL or `gateway_url` another); the
requests go through the SDK's `InferenceClient` with the pinning header, which `Wharf.predict` does not send.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wharf.client.inference import SyncInferenceClient
from wharf.sdk import Wharf
from wharf.errors import ConfigurationError, InvalidInput, ModelNotReady

REVISION_HEADER = "x-wharf-revision"


@dataclass(frozen=True)
class LabelledRows:
    """Features (one list of numbers per row) and the label each row should be predicted as."""

    features: list[list[float]]
    labels: list[str]


def read_labelled_rows(path: str | Path, label_column: str = "label") -> LabelledRows:
    """The rows of the CSV file at `path`: `label_column` is the label, the other columns the features (numbers)."""
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or label_column not in header:
            raise InvalidInput(f"label_column: {label_column!r} is not a column of {path} (it has {header or 'none'})")
        at = header.index(label_column)
        features, labels = [], []
        for number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise InvalidInput(f"{path} line {number}: {len(row)} values for {len(header)} columns")
            try:
                features.append([float(value) for i, value in enumerate(row) if i != at])
            except ValueError as e:
                raise InvalidInput(f"{path} line {number}: a feature that is not a number ({e})") from None
            labels.append(row[at])
    if not labels:
        raise InvalidInput(f"{path} has no rows to check")
    return LabelledRows(features, labels)


def matches(prediction: Any, label: str) -> bool:
    """Whether a prediction is the label: as numbers when the prediction is one (`1` is `"1.0"`), else as text."""
    if isinstance(prediction, int | float) and not isinstance(prediction, bool):
        try:
            return float(label) == prediction
        except ValueError:
            return False
    return str(prediction) == label


def accuracy(predictions: Sequence[Any], labels: Sequence[str]) -> float:
    """The share of `predictions` that match their label."""
    if len(predictions) != len(labels):
        raise InvalidInput(f"{len(predictions)} predictions for {len(labels)} labelled rows")
    return sum(map(matches, predictions, labels)) / len(labels)


def predictions(
    name: str,
    revision: str,
    rows: list[list[float]],
    *,
    namespace: str = "default",
    control_url: str | None = None,
    gateway_url: str | None = None,
    batch_size: int = 64,
    timeout_s: float = 30.0,
) -> list[Any]:
    """What `revision` of the InferenceService `namespace`/`name` predicts for `rows`."""
    batches = list(_batches(rows, batch_size))
    with Wharf(control_url or None, gateway_url=gateway_url or None) as wharf:
        service_url, gateway = wharf.get(name, namespace).url, wharf.gateway_url
    if not service_url:
        raise ModelNotReady(f"InferenceService {namespace}/{name} has no URL yet")
    headers = {"host": urlsplit(service_url).netloc, REVISION_HEADER: revision}
    answers: list[Any] = []
    with SyncInferenceClient(gateway, protocol="v1", headers=headers, timeout_s=timeout_s) as client:
        for batch in batches:
            answer = client.predict(name, {"instances": batch})["predictions"]
            if len(answer) != len(batch):
                raise InvalidInput(f"{revision} answered {len(answer)} predictions for {len(batch)} instances")
            answers += answer
    return answers


def _batches(rows: list[list[float]], size: int) -> Iterator[list[list[float]]]:
    if size < 1:
        raise ConfigurationError(f"batch_size: {size} must be at least 1")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
