"""The Grafana dashboards of deploy/grafana: what dashboards.py writes, well formed, every metric they read
documented. (tests/e2e/test_prometheus.py runs every query against a real Prometheus.)"""

from __future__ import annotations

import json
import re
import runpy
from typing import Any

import pytest

from tests.processes import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
GENERATOR = runpy.run_path(str(GRAFANA / "dashboards.py"))
NAMES = sorted(GENERATOR["DASHBOARDS"])


def _dashboard(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / name).read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_files_are_what_the_generator_writes(name: str) -> None:
    assert (GRAFANA / name).read_text() == GENERATOR["render"](GENERATOR["DASHBOARDS"][name]), (
        f"run `python deploy/grafana/dashboards.py` after changing it ({name} differs)"
    )


@pytest.mark.parametrize("name", NAMES)
def test_panels_read_the_data_source_variable_and_do_not_overlap(name: str) -> None:
    dashboard = _dashboard(name)
    variables = dashboard["templating"]["list"]
    assert variables[0] == {**variables[0], "name": "DS_PROMETHEUS", "type": "datasource", "query": "prometheus"}
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) and dashboard["uid"].startswith("wharf-")
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        taken = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not taken & cells, panel["title"]
        cells |= taken
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        targets = panel["targets"]
        assert targets and all(t["datasource"] == panel["datasource"] and t["expr"] for t in targets)
        assert len({t["refId"] for t in targets}) == len(targets)


def test_the_service_dashboard_picks_namespace_service_and_revisions() -> None:
    variables = {v["name"]: v for v in _dashboard("service.json")["templating"]["list"]}
    assert [name for name in variables] == ["DS_PROMETHEUS", "namespace", "service", "revision"]
    assert '{namespace="$namespace", service="$service"}' in variables["revision"]["query"]
    assert variables["revision"]["multi"] and variables["revision"]["includeAll"]


def test_every_metric_a_dashboard_reads_is_in_the_metrics_table() -> None:
    documented = (ROOT / "docs" / "METRICS.md").read_text()
    table = set(re.findall(r"`((?:wharf|trustyai)_[a-z_]+)`", documented))
    read = set()
    for name in NAMES:
        for panel in _dashboard(name)["panels"]:
            for target in panel.get("targets", []):
                read |= set(re.findall(r"\b(?:wharf|trustyai)_[a-z_]+", target["expr"]))
    read = {re.sub(r"_(bucket|sum|count)$", "", metric) for metric in read}
    read -= {"trustyai_"}  # the drift and fairness panels select trustyai_(kstest|...) by a regex on the name
    assert read and read <= table, read - table
