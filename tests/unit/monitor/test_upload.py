"""TrustyAI's upload body: read by the monitor, written from a CSV or Parquet file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest

from wharf.errors import InvalidInput
from wharf.monitor.upload import decode_upload, read_frame, upload_bodies

FRAME = pd.DataFrame(
    {"age": [30, 40, 50], "city": ["Oslo", "Lima", "Pune"], "score": [0.5, 0.25, 1.0], "ok": [True, False, True]}
)


def test_a_frame_becomes_bodies_of_one_tensor_per_column_with_outputs_in_the_response() -> None:
    ((rows, body),) = upload_bodies(FRAME, "credit", "TRAINING", outputs=["ok"])
    upload = decode_upload(body)
    assert rows == 3 and (upload.model, upload.tag, upload.ground_truth) == ("credit", "TRAINING", False)
    assert upload.inputs.names == ("age", "city", "score") and upload.inputs.datatypes == ("INT64", "BYTES", "FP64")
    assert upload.outputs is not None and upload.outputs.names == ("ok",) and upload.outputs.datatypes == ("BOOL",)
    assert list(upload.inputs.columns[1]) == ["Oslo", "Lima", "Pune"]
    assert [rows for rows, _ in upload_bodies(FRAME, "credit", "TRAINING", chunk_rows=2)] == [2, 1]


def test_files_that_cannot_be_uploaded_are_named() -> None:
    with pytest.raises(InvalidInput, match=r"output columns \['label'\] are not in the file"):
        list(upload_bodies(FRAME, "m", "T", outputs=["label"]))
    with pytest.raises(InvalidInput, match=r"columns \['score'\] have missing values"):
        list(upload_bodies(FRAME.assign(score=[0.5, None, 1.0]), "m", "T"))
    with pytest.raises(InvalidInput, match="the rows need inputs"):
        list(upload_bodies(FRAME[["ok"]], "m", "T", outputs=["ok"]))


def test_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "data.csv", index=False)
    FRAME.to_parquet(tmp_path / "data.parquet")
    pd.testing.assert_frame_equal(read_frame(tmp_path / "data.csv"), read_frame(tmp_path / "data.parquet"))
    with pytest.raises(InvalidInput, match="expected a .csv or .parquet file"):
        read_frame(tmp_path / "data.json")


def _body(**fields: object) -> bytes:
    doc = {
        "model_name": "iris",
        "request": {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]},
    }
    return orjson.dumps({**doc, **fields})


def test_ground_truth_names_the_request_of_each_row() -> None:
    request = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2], "executionIDs": ["a", "a"]}]}
    response = {"outputs": [{"name": "y", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}
    upload = decode_upload(_body(is_ground_truth=True, request=request, response=response))
    assert upload.ground_truth and upload.execution_ids == ["a", "a"] and upload.tag is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"model_name": ""}, "'model_name' must be a non-empty string"),
        ({"data_tag": "_trustyai_unlabeled"}, "'data_tag' must be a string not starting with '_'"),
        ({"request": {"inputs": []}}, "'request' must hold 'inputs'"),
        ({"request": {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1]}]}}, "holds 3 elements"),
        ({"response": [1]}, "'response' must be an object"),
        ({"is_ground_truth": True}, "ground truth needs a 'response'"),
        (
            {
                "is_ground_truth": True,
                "response": {"outputs": [{"name": "y", "shape": [2], "datatype": "FP64", "data": [1, 2]}]},
            },
            "ground truth needs request.inputs\\[0\\].executionIDs",
        ),
    ],
)
def test_bad_upload_bodies_name_the_field(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        decode_upload(_body(**fields))
