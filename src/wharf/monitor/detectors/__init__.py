"""Detectors of unusual inputs among a model's logged inferences: outliers against its reference data
(`OutlierDetector`) and adversarial inputs by feature squeezing (`AdversarialDetector`, calling the model through
the gateway with `gateway_predictor`); `Inspector` runs them over batches of logged inferences and reports what
they find as CloudEvents and Prometheus counters (`DetectorReports`). See docs/MONITORING_DETECTORS.md."""

from wharf.monitor.detectors.adversarial import AdversarialDetector, AdversarialScores, Predict, threshold_at
from wharf.monitor.detectors.events import ADVERSARIAL_TYPE, OUTLIER_TYPE, DetectionEvent, DetectorReports, Origin
from wharf.monitor.detectors.gateway import GatewayPredictor, gateway_predictor, is_detector_request
from wharf.monitor.detectors.inspection import Inspector, Logged
from wharf.monitor.detectors.outliers import OutlierDetector, OutlierScores
from wharf.monitor.detectors.sampling import Sampler
from wharf.monitor.detectors.squeezers import MedianSmoothing, Quantize, Round, Squeezer, parse_squeezers

__all__ = [
    "ADVERSARIAL_TYPE",
    "OUTLIER_TYPE",
    "AdversarialDetector",
    "AdversarialScores",
    "DetectionEvent",
    "DetectorReports",
    "GatewayPredictor",
    "Inspector",
    "Logged",
    "MedianSmoothing",
    "Origin",
    "OutlierDetector",
    "OutlierScores",
    "Predict",
    "Quantize",
    "Round",
    "Sampler",
    "Squeezer",
    "gateway_predictor",
    "is_detector_request",
    "parse_squeezers",
    "threshold_at",
]
