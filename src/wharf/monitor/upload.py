"""TrustyAI's upload body (`POST /data/upload`), read by the monitor and written from a CSV or Parquet file by
`wharf monitor upload`.

The body:
    {"model_name": "iris", "data_tag": "TRAINING", "is_ground_truth": false,
     "request": {"inputs": [V2 tensors]}, "response": {"outputs": [V2 tensors]}}
- with a `data_tag`, the rows are reference data under that tag (the outputs are optional: rows without them read
  as NaN outputs); without one, they are stored as if logged (TrustyAI's untagged upload);
- with `is_ground_truth: true`, the rows are labels of logged rows: `request.inputs[0].executionIDs` names, per
  row, the request it belongs to (a request of n rows is named n times, its rows in order), the inputs must be
  those that were logged, and the outputs are the true values.
Columns follow `wharf.monitor.payloads` and must fit the model's (`wharf.monitor.schema`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from wharf.errors import InvalidInput, WharfError, from_http_status
from wharf.monitor.payloads import Table, decode_tensors, tensor_table
from wharf.protocol import v2

EXECUTION_IDS = "executionIDs"
CHUNK_ROWS = 50_000  # rows a file is uploaded by, one request each


@dataclass(frozen=True, slots=True)
class Upload:
    """A decoded upload body."""

    model: str
    tag: str | None
    ground_truth: bool
    inputs: Table
    outputs: Table | None
    execution_ids: list[str] | None


def decode_upload(body: bytes) -> Upload:
    """Read an upload body (`InvalidInput` naming the field that is wrong)."""
    doc = v2.loads_object(body)
    model = doc.get("model_name")
    if not isinstance(model, str) or not model:
        raise InvalidInput("'model_name' must be a non-empty string")
    tag = doc.get("data_tag")
    if tag is not None and (not isinstance(tag, str) or tag.startswith("_")):
        raise InvalidInput(f"'data_tag' must be a string not starting with '_', got {tag!r}")
    truth = doc.get("is_ground_truth", False)
    if not isinstance(truth, bool):
        raise InvalidInput("'is_ground_truth' must be true or false")
    request = doc.get("request")
    items = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInput("'request' must hold 'inputs', a list of tensors: uploaded rows need at least one input")
    ids = items[0].get(EXECUTION_IDS) if isinstance(items[0], dict) else None
    items = [
        {k: v for k, v in item.items() if k != EXECUTION_IDS} if isinstance(item, dict) else item for item in items
    ]
    inputs = tensor_table(decode_tensors(items, "input", len(body)), "input")
    response = doc.get("response")
    outputs = None
    if response is not None:
        if not isinstance(response, dict):
            raise InvalidInput("'response' must be an object holding 'outputs'")
        outputs = tensor_table(decode_tensors(response.get("outputs"), "output", len(body)), "output")
    if truth:
        if outputs is None:
            raise InvalidInput("ground truth needs a 'response' holding the true outputs")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise InvalidInput(f"ground truth needs request.inputs[0].{EXECUTION_IDS}: the request id of each row")
        if len(ids) != inputs.rows:
            raise InvalidInput(f"{len(ids)} {EXECUTION_IDS} for {inputs.rows} rows; give one per row")
    return Upload(model, tag or None, truth, inputs, outputs, ids if truth else None)


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file's rows (by its suffix)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise InvalidInput(f"cannot read {path}: {e}") from None
    raise InvalidInput(f"{path}: expected a .csv or .parquet file")


def upload_bodies(
    frame: pd.DataFrame, model: str, tag: str, outputs: Sequence[str] = (), chunk_rows: int = CHUNK_ROWS
) -> Iterator[tuple[int, bytes]]:
    """Upload bodies for a table's rows, `chunk_rows` a body (with how many rows each holds): one input tensor per
    column but `outputs`, which go in the response."""
    columns = [str(name) for name in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    missing = [name for name in outputs if name not in columns]
    if missing:
        raise InvalidInput(f"output columns {missing} are not in the file; its columns are {columns}")
    inputs = [name for name in columns if name not in outputs]
    if not inputs:
        raise InvalidInput("every column is an output; the rows need inputs")
    empty = [name for name in columns if frame[name].isna().any()]
    if empty:
        raise InvalidInput(f"columns {empty} have missing values; fill or drop them first")
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        doc: dict[str, Any] = {
            "model_name": model,
            "data_tag": tag,
            "request": {"inputs": [_tensor(name, part[name]) for name in inputs]},
        }
        if outputs:
            doc["response"] = {"model_name": model, "outputs": [_tensor(name, part[name]) for name in outputs]}
        yield len(part), v2.dumps(doc)


def _tensor(name: str, column: pd.Series) -> dict[str, Any]:
    values = column.to_numpy()
    if values.dtype.kind == "b":
        datatype = "BOOL"
    elif values.dtype.kind in "iu":
        datatype, values = "INT64", values.astype(np.int64)
    elif values.dtype.kind == "f":
        datatype, values = "FP64", values.astype(np.float64)
    else:
        datatype, values = "BYTES", [str(value) for value in values]
    return {"name": name, "shape": [len(column)], "datatype": datatype, "data": values}


def upload_file(url: str, path: Path, model: str, tag: str, outputs: Sequence[str], timeout_s: float = 60.0) -> int:
    """Upload a file's rows to the monitor at `url` as reference data tagged `tag`; how many rows."""
    frame = read_frame(path)
    sent = 0
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        for rows, body in upload_bodies(frame, model, tag, outputs):
            try:
                answer = client.post("/data/upload", content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as e:
                raise WharfError(f"cannot reach the monitor at {url}: {e}") from None
            if answer.status_code >= 400:
                raise from_http_status(answer.status_code, _error(answer))
            sent += rows
    return sent


def _error(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return answer.text or f"status {answer.status_code}"
