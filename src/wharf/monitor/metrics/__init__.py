"""The monitor's metrics: drift (TrustyAI's meanshift, kstest, approxkstest; Jensen-Shannon, PSI and chi-square)
group fairness (TrustyAI's SPD and DIR; equal opportunity, average odds and equalized odds differences) and
performance against ground truth (Wharf's accuracy, MAE and RMSE), over the stored rows that `wharf.monitor.data.Rows` gives. The definitions (`registry`) are kept apart from the
scheduler that recomputes registered requests and exports them as Prometheus gauges (`scheduler`, `gauges`)."""

from wharf.monitor.metrics.api import metrics_router
from wharf.monitor.metrics.registry import METRICS, compute
from wharf.monitor.metrics.scheduler import Scheduler
from wharf.monitor.metrics.settings import MetricsSettings

__all__ = ["METRICS", "MetricsSettings", "Scheduler", "compute", "metrics_router"]
