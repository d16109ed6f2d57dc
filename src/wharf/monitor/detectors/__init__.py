"""Detectors of unusual inputs among a model's logged inferences: outliers against its reference data
(`OutlierDetector`) and adversarial inputs by feature squeezing (`AdversarialDetector`, calling the model through
the gateway with `gateway_predictor`); `Inspector` runs them over batches of logged inferences and reports what
they find as CloudEvents and Prometheus counters (`DetectorReports`). See docs/MONITORING_DETECTORS.md.

The names below are imported when first used (scikit-learn and scipy take a second to import), so that the monitor
starts without them and `wharf.monitor.detectors.extension` is light to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "adversarial": ("AdversarialDetector", "AdversarialScores", "Predict", "threshold_at"),
    "events": ("ADVERSARIAL_TYPE", "OUTLIER_TYPE", "DetectionEvent", "DetectorReports", "Origin"),
    "gateway": ("GatewayPredictor", "gateway_predictor", "is_detector_request"),
    "inspection": ("Inspector", "Logged"),
    "outliers": ("OutlierDetector", "OutlierScores"),
    "sampling": ("Sampler",),
    "squeezers": ("MedianSmoothing", "Quantize", "Round", "Squeezer", "parse_squeezers"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__
