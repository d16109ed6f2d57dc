"""Server-side printing: KServe's columns for InferenceServices and InferenceGraphs, read from the status Wharf
writes; what each row carries of the object; the Accept headers that ask for a Table; ages as kubectl writes them."""

from __future__ import annotations

import pytest

from wharf.control.kube.table import content_type, human_duration, table, table_version
from wharf.errors import InvalidInput

NOW = 1_700_000_000.0
CREATED = "2023-11-14T22:06:40Z"  # NOW - 400 s


def service(name: str, status: dict) -> dict:
    metadata = {"name": name, "namespace": "default", "creationTimestamp": CREATED, "labels": {"team": "a"}}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "status": status,
    }


CANARY = service(
    "iris",
    {
        "url": "http://iris.default.example.com",
        "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "traffic": [
                    {"revisionName": "iris-predictor-2", "percent": 10, "latestRevision": True, "tag": "latest"},
                    {"revisionName": "iris-predictor-1", "percent": 90, "latestRevision": False, "tag": "prev"},
                ]
            }
        },
    },
)
STARTING = service(
    "new", {"conditions": [{"type": "Ready", "status": "False", "message": "waiting for a replica\nof new"}]}
)


def test_an_inferenceservice_shows_kserves_columns_then_wides_message() -> None:
    printed = table("InferenceService", [CANARY, STARTING], now=NOW, resource_version="12")
    assert (printed["kind"], printed["apiVersion"], printed["metadata"]) == (
        "Table",
        "meta.k8s.io/v1",
        {"resourceVersion": "12"},
    )
    names = [(c["name"], c["type"], c["priority"]) for c in printed["columnDefinitions"]]
    assert names == [
        ("Name", "string", 0),
        ("URL", "string", 0),
        ("Ready", "string", 0),
        ("Prev", "integer", 0),
        ("Latest", "integer", 0),
        ("PrevRolledoutRevision", "string", 0),
        ("LatestReadyRevision", "string", 0),
        ("Age", "date", 0),
        ("Message", "string", 1),
    ]
    canary, starting = (row["cells"] for row in printed["rows"])
    assert canary == [
        "iris",
        "http://iris.default.example.com",
        "True",
        90,
        10,
        "iris-predictor-1",
        "iris-predictor-2",
        "6m40s",
        None,
    ]
    assert starting == ["new", None, "False", None, None, None, None, "6m40s", "waiting for a replica"]


def test_a_service_rolled_out_fully_has_no_prev_and_one_without_status_prints() -> None:
    rolled = service(
        "iris",
        {
            "components": {
                "predictor": {
                    "traffic": [{"revisionName": "r2", "percent": 100, "latestRevision": True, "tag": "latest"}]
                }
            }
        },
    )
    bare = {"metadata": {"name": "bare"}}
    rows = [row["cells"] for row in table("InferenceService", [rolled, bare], now=NOW)["rows"]]
    assert rows[0][3:7] == [None, 100, None, "r2"]
    assert rows[1] == ["bare", None, None, None, None, None, None, None, None]


def test_an_inferencegraph_shows_name_url_ready_and_age() -> None:
    graph = {
        "metadata": {"name": "g", "creationTimestamp": CREATED},
        "status": {"url": "http://g", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    printed = table("InferenceGraph", [graph], now=NOW)
    assert [c["name"] for c in printed["columnDefinitions"]] == ["Name", "URL", "Ready", "Age", "Message"]
    assert printed["rows"][0]["cells"] == ["g", "http://g", "True", "6m40s", None]
    assert printed["columnDefinitions"][0]["format"] == "name"


def test_rows_carry_the_metadata_by_default_the_object_or_nothing_as_asked() -> None:
    [row] = table("InferenceService", [CANARY], now=NOW)["rows"]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": CANARY["metadata"],
    }
    assert table("InferenceService", [CANARY], "Object", now=NOW)["rows"][0]["object"] == CANARY
    assert "object" not in table("InferenceService", [CANARY], "None", now=NOW)["rows"][0]
    with pytest.raises(InvalidInput, match="includeObject"):
        table("InferenceService", [CANARY], "Everything")


def test_a_watchs_later_events_may_leave_the_columns_out_and_v1beta1_is_served_too() -> None:
    printed = table("InferenceService", [CANARY], columns=False, version="v1beta1", now=NOW)
    assert printed["columnDefinitions"] == [] and printed["apiVersion"] == "meta.k8s.io/v1beta1"
    assert printed["metadata"] == {}
    with pytest.raises(InvalidInput):
        table("Pod", [])


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "v1",
        ),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "v1beta1"),
        ("application/json; as=Table; g=meta.k8s.io; v=v1", "v1"),
        ("application/json", None),
        ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
        ("application/json;as=Table;v=v2;g=meta.k8s.io", None),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None),
        ("", None),
    ],
)
def test_the_accept_header_that_asks_for_a_table(accept: str, version: str | None) -> None:
    assert table_version(accept) == version


def test_the_answers_content_type_names_the_table_version() -> None:
    assert content_type("v1") == "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 60, "5h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (731 * 86400, "2y1d"),
        (365 * 3 * 86400, "3y"),
        (365 * 9 * 86400, "9y"),
    ],
)
def test_ages_are_written_as_kubectl_writes_them(seconds: int, written: str) -> None:
    assert human_duration(seconds) == written
