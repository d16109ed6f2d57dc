"""Writes Wharf's Grafana dashboards (overview.json, service.json, monitoring.json beside this file) from the panel
lists below: `python deploy/grafana/dashboards.py`. Edit the queries here, never the JSON (a test checks that the
files are what this writes, and runs every query against a Prometheus that scraped a running Wharf).

Every dashboard takes its data source from the variable `DS_PROMETHEUS` (any Prometheus data source) and its
namespace, service and revision from `label_values` of the gateway's `wharf_gateway_requests_in_flight`, which has a
sample for every revision the gateway routes to, busy or not. The control plane's replica and cold-start metrics
are labelled by revision only: the overview adds their service by joining on the gateway's labels.

Errors, as the gateway counts them for canary rollback: REST 5xx and 499 (the client gave up), gRPC INTERNAL,
UNKNOWN, UNAVAILABLE, DATA_LOSS, DEADLINE_EXCEEDED and CANCELLED. An error ratio is 0, not empty, while a
revision has answered no error (`or ... * 0`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
ERRORS = "5..|499|INTERNAL|UNKNOWN|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED|CANCELLED"
RATE = "$__rate_interval"
LATENCY = "wharf_gateway_request_duration_seconds"
LATENCY_DESCRIPTION = "At the gateway, from arrival to answer (activator wait included)."
INDEX = "wharf_gateway_requests_in_flight"  # a sample for every revision the gateway routes to: the variables' values
WIDTH, HEIGHT = 12, 8  # two panels a row

# Selectors, by the variables of the dashboard they are used in.
ALL_SERVICES = 'namespace=~"$namespace"'
ONE_SERVICE = 'namespace="$namespace", service="$service", revision=~"$revision"'
REVISIONS = 'revision=~"$revision"'
MODELS = 'model=~"$model"'


def target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(title: str, description: str, unit: str, *targets: tuple[str, str], kind: str = "timeseries") -> dict:
    """A panel of `kind` (timeseries or stat) showing (expression, legend) `targets` in `unit`."""
    shown = [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)]
    options: dict[str, Any] = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    if kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
        "targets": shown,
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    """A variable holding the values of a label (`label_values(...)`); a multi-valued one starts at All."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,  # when the time range changes: new revisions appear
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {"text": "All", "value": "$__all"} if multi else {},
        "options": [],
        "hide": 0,
        "regex": "",
    }


DATASOURCE_VARIABLE = {
    "name": "DS_PROMETHEUS",
    "label": "Prometheus",
    "type": "datasource",
    "query": "prometheus",
    "current": {},
    "hide": 0,
    "regex": "",
    "refresh": 1,
}


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict]) -> dict[str, Any]:
    """The dashboard, its panels numbered and laid out two a row (a row header across the width)."""
    x = y = 0
    laid = []
    for number, each in enumerate(panels, start=1):
        if each["type"] == "row":
            y += HEIGHT if x else 0
            x = 0
            laid.append({**each, "id": number, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
            y += 1
            continue
        laid.append({**each, "id": number, "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y}})
        x += WIDTH
        if x >= 24:
            x, y = 0, y + HEIGHT
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["wharf"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [DATASOURCE_VARIABLE, *variables]},
        "panels": laid,
    }


def rate(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


def total(metric: str, selector: str, by: str, op: str = "sum") -> str:
    """`metric`'s series summed (or `op`, such as max) by the labels `by`."""
    return f"{op} by ({by}) ({metric}{{{selector}}})"


def share(part: str, whole: str) -> str:
    """`part` over `whole`, 0 (not empty) where `whole` has series and `part` has none."""
    return f"({part} or {whole} * 0) / {whole}"


def error_ratio(selector: str, by: str) -> str:
    """Errors over answers of the live traffic, 0 while there are answers and no error."""
    answers = rate("wharf_gateway_requests_total", f'{selector}, traffic="live"', by)
    errors = rate("wharf_gateway_requests_total", f'{selector}, traffic="live", code=~"{ERRORS}"', by)
    return share(errors, answers)


def quantile(q: float, histogram: str, selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({histogram}_bucket{{{selector}}}[{RATE}])))"


def mean(histogram: str, selector: str, by: str) -> str:
    return f"{rate(histogram + '_sum', selector, by)} / {rate(histogram + '_count', selector, by)}"


def per_service(metric: str) -> str:
    """A control-plane metric labelled by revision, summed by the namespace and service the gateway gives it."""
    services = f"group by (namespace, service, revision) ({INDEX}{{{ALL_SERVICES}}})"
    return f"sum by (namespace, service) ({metric} * on (revision) group_left (namespace, service) {services})"


def overview() -> dict[str, Any]:
    live = f'{ALL_SERVICES}, traffic="live"'
    by = "namespace, service"
    legend = "{{namespace}}/{{service}}"
    panels = [
        panel("Requests/s", "Answers of every service, live traffic.", "reqps",
              (f'sum(rate(wharf_gateway_requests_total{{{live}}}[{RATE}]))', "requests/s"), kind="stat"),
        panel("Processes up", "Scrape targets answering, by job (replicas, gateway, control plane, monitor).",
              "short", (total("up", 'job=~"wharf-.*"', "job"), "{{job}}"), kind="stat"),
        row("Traffic"),
        panel("Requests/s by service", "Answers per second at the gateway, live traffic.", "reqps",
              (rate("wharf_gateway_requests_total", live, by), legend)),
        panel("Error ratio by service", f"Errors ({ERRORS}) over answers.", "percentunit",
              (error_ratio(ALL_SERVICES, by), legend)),
        panel("p50 latency by service", LATENCY_DESCRIPTION, "s",
              (quantile(0.5, LATENCY, live, by), legend)),
        panel("p99 latency by service", LATENCY_DESCRIPTION, "s",
              (quantile(0.99, LATENCY, live, by), legend)),
        row("Capacity"),
        panel("Replicas ready and desired by service", "What the autoscaler wants, and what is ready.", "short",
              (per_service("wharf_revision_ready_replicas"), legend + " ready"),
              (per_service("wharf_revision_desired_replicas"), legend + " desired")),
        panel("Requests waiting in the activator", "Requests held at the gateway until a replica is ready.", "short",
              (total("wharf_gateway_activator_queued_requests", ALL_SERVICES, by), legend)),
        panel("CPU by service", "Cores the replicas' processes use.", "short",
              (rate("wharf_replica_cpu_seconds_total", ALL_SERVICES, by), legend)),
        panel("Resident memory by service", "Of the replicas' processes.", "bytes",
              (total("wharf_replica_resident_memory_bytes", ALL_SERVICES, by), legend)),
    ]  # fmt: skip
    namespace = variable("namespace", "Namespace", f"label_values({INDEX}, namespace)", multi=True)
    return dashboard("wharf-overview", "Wharf / Overview", "Every InferenceService on one Wharf.", [namespace], panels)


def service() -> dict[str, Any]:
    live = f'{ONE_SERVICE}, traffic="live"'
    by = "revision"
    legend = "{{revision}}"
    panels = [
        row("Traffic"),
        panel("Requests/s by revision", "Answers per second at the gateway, live traffic: canary beside stable.",
              "reqps", (rate("wharf_gateway_requests_total", live, by), legend)),
        panel("Traffic share by revision", "Each revision's share of the service's live answers (canary vs stable).",
              "percentunit",
              (f"{rate('wharf_gateway_requests_total', live, by)} / ignoring ({by}) group_left "
               f"{rate('wharf_gateway_requests_total', live, '')}", legend)),
        panel("Requests/s by code", "Answers by HTTP status or gRPC status name.", "reqps",
              (rate("wharf_gateway_requests_total", live, "code"), "{{code}}")),
        panel("Error ratio by revision", f"Errors ({ERRORS}) over answers: canary vs stable.", "percentunit",
              (error_ratio(ONE_SERVICE, by), legend)),
        panel("Latency by revision", LATENCY_DESCRIPTION, "s",
              (quantile(0.5, LATENCY, live, by), legend + " p50"),
              (quantile(0.9, LATENCY, live, by), legend + " p90"),
              (quantile(0.99, LATENCY, live, by), legend + " p99")),
        panel("Retries by revision", "Tries sent again: a refused connection, or one that broke before any answer.",
              "reqps", (rate("wharf_gateway_retries_total", ONE_SERVICE, "revision, reason"), "{{revision}} {{reason}}")),
        row("Scaling"),
        panel("Replicas ready and desired", "What the autoscaler wants, and what is ready.", "short",
              (total("wharf_revision_ready_replicas", REVISIONS, by), legend + " ready"),
              (total("wharf_revision_desired_replicas", REVISIONS, by), legend + " desired")),
        panel("Panic mode", "1 while the autoscaler panics (a burst beyond what the replicas can take).", "short",
              (total("wharf_revision_panic", REVISIONS, by, "max"), legend)),
        panel("Activator queue and requests in flight", "Requests waiting for a ready replica, and being served.",
              "short",
              (total("wharf_gateway_activator_queued_requests", ONE_SERVICE, by), legend + " waiting"),
              (total("wharf_gateway_requests_in_flight", ONE_SERVICE, by), legend + " in flight")),
        panel("Cold starts", "Scale-ups from zero so far (each step is one), and their mean duration.", "short",
              (total("wharf_cold_start_seconds_count", REVISIONS, by), legend + " cold starts"),
              (f'{total("wharf_cold_start_seconds_sum", REVISIONS, by)} / '
               f'{total("wharf_cold_start_seconds_count", REVISIONS, by)}', legend + " mean seconds")),
        row("Model servers"),
        panel("Batch size", "Rows per predict call (a batch is one call).", "short",
              (quantile(0.5, "wharf_batch_size", ONE_SERVICE, by), legend + " p50"),
              (quantile(0.99, "wharf_batch_size", ONE_SERVICE, by), legend + " p99"),
              (mean("wharf_batch_size", ONE_SERVICE, by), legend + " mean")),
        panel("Queue wait", "Time a request waited for its model's worker.", "s",
              (quantile(0.5, "wharf_queue_wait_seconds", ONE_SERVICE, by), legend + " p50"),
              (quantile(0.99, "wharf_queue_wait_seconds", ONE_SERVICE, by), legend + " p99")),
        panel("Queue depth", "Requests waiting for the model's worker when it last took work.", "short",
              (total("wharf_queue_depth", ONE_SERVICE, by, "max"), legend)),
        panel("Model step time p99", "One call of preprocess, predict or postprocess.", "s",
              (quantile(0.99, "wharf_model_step_seconds", ONE_SERVICE, "revision, step"), "{{revision}} {{step}}")),
        panel("Model server answers by status", "As the replicas count them, by protocol.", "reqps",
              (rate("wharf_requests_total", ONE_SERVICE, "revision, protocol, status"),
               "{{revision}} {{protocol}} {{status}}")),
        panel("Model load time", "How long each replica took to load its model.", "s",
              (total("wharf_model_load_seconds", ONE_SERVICE, by, "max"), legend)),
        row("Cost and utilisation"),
        panel("CPU", "Cores the replicas' processes use.", "short",
              (rate("wharf_replica_cpu_seconds_total", ONE_SERVICE, by), legend)),
        panel("Resident memory", "Of the replicas' processes.", "bytes",
              (total("wharf_replica_resident_memory_bytes", ONE_SERVICE, by), legend)),
        panel("Replicas running and idle", "Mean replicas running, and the share of their time with no request.",
              "short",
              (rate("wharf_revision_replica_seconds_total", ONE_SERVICE, by), legend + " running"),
              (f"{rate('wharf_revision_idle_replica_seconds_total', ONE_SERVICE, by)} / "
               f"{rate('wharf_revision_replica_seconds_total', ONE_SERVICE, by)}", legend + " idle share")),
        panel("Concurrency: used and target", "Requests in flight and waiting, and the autoscaler's target per replica.",
              "short",
              (total("wharf_revision_concurrency", ONE_SERVICE, by), legend + " used"),
              (total("wharf_revision_concurrency_target", ONE_SERVICE, by), legend + " target per replica")),
    ]  # fmt: skip
    variables = [
        variable("namespace", "Namespace", f"label_values({INDEX}, namespace)", multi=False),
        variable(
            "service",
            "Service",
            f'label_values({INDEX}{{namespace="$namespace"}}, service)',
            multi=False,
        ),
        variable(
            "revision",
            "Revision",
            f'label_values({INDEX}{{namespace="$namespace", service="$service"}}, revision)',
            multi=True,
        ),
    ]
    description = "One InferenceService: traffic, canary vs stable, scaling, model servers, cost."
    return dashboard("wharf-service", "Wharf / Service", description, variables, panels)


def monitoring() -> dict[str, Any]:
    drift = "trustyai_(kstest|approxkstest|meanshift|jensenshannon|psi|chisquare)"
    fairness = "trustyai_(spd|dir|eod|aod|eqodds)"
    detectors = 'service=~"$model"'
    legend = "{{model}} {{metricName}}"
    panels = [
        row("Scheduled metrics"),
        panel("Drift", "Scheduled drift metrics (p-values, distances), one series per column.", "none",
              (f'{{__name__=~"{drift}", {MODELS}}}', legend + " {{subcategory}}")),
        panel("Fairness", "Scheduled group fairness metrics (SPD, DIR, ...).", "none",
              (f'{{__name__=~"{fairness}", {MODELS}}}', legend + " {{protected}}")),
        panel("Outside bounds", "1 while a scheduled metric is outside its thresholds.", "short",
              (f"wharf_monitor_metric_outside_bounds{{{MODELS}}}", legend)),
        row("Detectors"),
        panel("Detected rate", "Share of the inspected rows found outliers or adversarial, by detector.",
              "percentunit",
              (share(rate("wharf_monitor_detected_rows_total", detectors, "detector, service"),
                     rate("wharf_monitor_inspected_rows_total", detectors, "detector, service")),
               "{{service}} {{detector}}")),
        panel("Rows inspected and detected", "Rows scored by the detectors so far, and those reported.", "short",
              (total("wharf_monitor_inspected_rows_total", detectors, "detector, service"),
               "{{service}} {{detector}} inspected"),
              (total("wharf_monitor_detected_rows_total", detectors, "detector, service"),
               "{{service}} {{detector}} detected")),
        row("Ingestion"),
        panel("Payload events", "Received by the monitor; and sent, dropped or failed by the gateway.", "reqps",
              (rate("wharf_monitor_events_total", "", "type"), "received {{type}}"),
              (rate("wharf_payload_log_events_total", "", "outcome"), "gateway {{outcome}}")),
        panel("Logged rows held", "Rows kept per model (retention drops the oldest).", "short",
              (total("wharf_monitor_rows", MODELS, "model"), "{{model}}")),
    ]  # fmt: skip
    models = variable("model", "Model", "label_values(wharf_monitor_rows, model)", multi=True)
    description = "The model monitor: drift and fairness gauges, outlier and adversarial rates, ingestion."
    return dashboard("wharf-monitoring", "Wharf / Monitoring", description, [models], panels)


DASHBOARDS = {"overview.json": overview, "service.json": service, "monitoring.json": monitoring}


def render(make: Any) -> str:
    return json.dumps(make(), indent=2) + "\n"


if __name__ == "__main__":
    for name, make in DASHBOARDS.items():
        (HERE / name).write_text(render(make))
