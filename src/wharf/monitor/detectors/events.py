"""What the detectors found, reported: CloudEvents to a reply URL, and Prometheus counters per service.

An inference with at least one outlier row is reported as a CloudEvent of type
`org.kubeflow.serving.inference.outlier` with data `{"is_outlier": [...], "instance_score": [...],
"feature_score": [[...]]}`, one with an adversarial row as `org.kubeflow.serving.inference.adversarial` with data
`{"is_adversarial": [...], "instance_score": [...]}`: lists with one item per row of the inference, as alibi-detect's
detectors answer. The events follow alibi-detect's KServe server (Seldon's `adserver`): the event's `id` is the id of
the inference's payload events (its `x-request-id`), and it carries their extensions `inferenceservicename`,
`namespace`, `component` and `endpoint`; its `source` names the monitor. They are sent by the payload logger's
poster (`wharf.logger.PayloadLogger`: a bounded queue, a timeout per event, drops and failures counted).

Counters, labelled `detector` (outlier, adversarial), `namespace` and `service` (the InferenceService):
`wharf_monitor_inspected_rows_total` (rows scored), `wharf_monitor_detected_rows_total` (rows found outliers or
adversarial) and `wharf_monitor_detector_failed_rows_total` (rows not scored: the model could not be called, or the
rows were not of the shape the detector takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from prometheus_client import CollectorRegistry, Counter

from wharf.logger import LogTarget, PayloadEvent, PayloadLogger

OUTLIER_TYPE = "org.kubeflow.serving.inference.outlier"
ADVERSARIAL_TYPE = "org.kubeflow.serving.inference.adversarial"
Detector = Literal["outlier", "adversarial"]
_TYPES: dict[Detector, str] = {"outlier": OUTLIER_TYPE, "adversarial": ADVERSARIAL_TYPE}
_LABELS = ("detector", "namespace", "service")
_COUNTERS = {
    "inspected": ("wharf_monitor_inspected_rows", "Logged rows a detector scored."),
    "detected": ("wharf_monitor_detected_rows", "Logged rows found outliers or adversarial."),
    "failed": (
        "wharf_monitor_detector_failed_rows",
        "Logged rows a detector could not score (model call failed, or wrong shape).",
    ),
}


@dataclass(frozen=True, slots=True)
class Origin:
    """The logged inference a finding is about, as its payload events name it."""

    id: str
    service: str
    namespace: str
    component: str = "predictor"
    endpoint: str = ""  # the revision


@dataclass(frozen=True, slots=True)
class DetectionEvent(PayloadEvent):
    """A detector's finding as the payload logger sends it: a payload event of its own `type`."""

    type: str = OUTLIER_TYPE

    def to_http(self) -> tuple[dict[str, str], bytes]:
        headers, body = PayloadEvent.to_http(self)
        headers["ce-type"] = self.type
        return headers, body


class DetectorReports:
    """Counts findings in `registry` and sends them to `reply_url` (none: counted only) with `logger` (default: a
    `PayloadLogger` of its own, in the event loop that reports). `source` is the events' source. Call it from one
    event loop; `close` sends what is queued."""

    def __init__(
        self,
        registry: CollectorRegistry,
        reply_url: str | None = None,
        source: str = "wharf-monitor",
        logger: PayloadLogger | None = None,
    ) -> None:
        self.reply_url = reply_url
        self.source = source
        self.logger = logger or PayloadLogger()
        self._registry = registry
        self._counters = {
            what: Counter(name, description, _LABELS, registry=registry)
            for what, (name, description) in _COUNTERS.items()
        }

    def count(self, detector: Detector, origin: Origin, inspected: int, detected: int = 0, failed: int = 0) -> None:
        """Add to the service's counts of rows inspected, detected and failed."""
        for what, rows in (("inspected", inspected), ("detected", detected), ("failed", failed)):
            if rows:
                self._counters[what].labels(detector, origin.namespace, origin.service).inc(rows)

    def emit(self, detector: Detector, origin: Origin, data: dict[str, Any]) -> None:
        """Queue the event of a finding about `origin` (nothing without a reply URL)."""
        if self.reply_url is None:
            return
        target = LogTarget(
            self.reply_url, "all", origin.service, origin.namespace, origin.component, origin.endpoint, self.source
        )
        body = orjson.dumps(data)
        self.logger.submit(DetectionEvent(target, origin.id, body, "application/json", {}, type=_TYPES[detector]))

    def counts(self, namespace: str, service: str) -> dict[Detector, dict[str, int]]:
        """Per detector, the service's rows inspected, detected and failed so far (e.g. for its status)."""
        return {
            detector: {
                what: int(
                    self._registry.get_sample_value(
                        f"{name}_total", {"detector": detector, "namespace": namespace, "service": service}
                    )
                    or 0
                )
                for what, (name, _) in _COUNTERS.items()
            }
            for detector in _TYPES
        }

    async def close(self) -> None:
        await self.logger.close()
