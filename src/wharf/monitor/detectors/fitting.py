"""Detectors made from their configuration (`wharf.monitor.detectors.configs`) and a model's reference rows.

- Outliers: `OutlierDetector.fit` on the reference rows of the tag, input columns in the model's order (blocking:
  call it in a worker thread). NotFound names a missing model or tag; InvalidInput a text column or too few rows.
- Adversarial inputs: the reference rows (at most `CLEAN_ROWS`, a seeded sample, rows with a missing value left
  out) are the clean rows the threshold is fitted on, calling the model through the gateway: the predictor's host is
  `{modelId}-predictor.{namespace}.{domain}`, so that a transformer in front of it is not in the way. The
  squeezers quantize between the reference's smallest and largest value. What a restart needs (threshold, range) is
  kept, so that a restored detector does not call the model (`restore_adversarial`).
Without the gateway's URL (`WHARF_MONITOR_GATEWAY_URL`, which `wharf up` sets) adversarial detection is unavailable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wharf.errors import InvalidInput, Unimplemented
from wharf.monitor.data import Rows
from wharf.monitor.detectors.configs import AdversarialBody, OutlierBody
from wharf.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from wharf.monitor.detectors.adversarial import AdversarialDetector
    from wharf.monitor.detectors.gateway import GatewayPredictor
    from wharf.monitor.detectors.outliers import OutlierDetector

#: Clean rows an adversarial detector's threshold is fitted on at most (each costs 1 + squeezers model rows).
CLEAN_ROWS = 1000
#: How long a call of the model through the gateway may take (a service scaled to zero starts meanwhile).
MODEL_TIMEOUT_S = 30.0
_SEED = 0


def reference_inputs(rows: Rows, model: str, tag: str) -> pd.DataFrame:
    """The input columns of `model`'s reference rows tagged `tag`, in the model's order (blocking)."""
    return rows.reference(model, tag)[rows.input_names(model)]


def fit_outliers(rows: Rows, body: OutlierBody) -> OutlierDetector:
    """The outlier detector `body` configures, fitted on its reference rows (blocking)."""
    from wharf.monitor.detectors.outliers import OutlierDetector

    reference = reference_inputs(rows, body.model_id, body.reference_tag)
    return OutlierDetector.fit(reference, body.method, body.contamination)


def predictor_host(body: AdversarialBody, settings: MonitorSettings) -> str:
    return f"{body.model_id}-predictor.{body.namespace}.{settings.domain}"


def _predictor(body: AdversarialBody, settings: MonitorSettings) -> GatewayPredictor:
    from wharf.monitor.detectors.gateway import gateway_predictor

    if settings.gateway_url is None:
        raise Unimplemented(
            "adversarial detection is unavailable: the monitor does not know the gateway "
            "(WHARF_MONITOR_GATEWAY_URL; `wharf up` sets it)"
        )
    host = predictor_host(body, settings)
    return gateway_predictor(settings.gateway_url, host, body.model_id, body.protocol, body.output, MODEL_TIMEOUT_S)


def clean_rows(rows: Rows, body: AdversarialBody) -> tuple[list[str], np.ndarray]:
    """The model's input columns, and the reference rows the threshold is fitted on, float64 [rows, inputs]
    (blocking)."""
    reference = reference_inputs(rows, body.model_id, body.reference_tag)
    text = [str(name) for name, dtype in reference.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if text:
        raise InvalidInput(f"adversarial detection takes numeric inputs; not numeric: {', '.join(text)}")
    clean = reference.to_numpy(dtype=np.float64)
    clean = clean[np.isfinite(clean).all(axis=1)]
    if len(clean) > CLEAN_ROWS:
        clean = clean[np.random.default_rng(_SEED).choice(len(clean), CLEAN_ROWS, replace=False)]
    return [str(name) for name in reference.columns], clean


async def fit_adversarial(
    clean: np.ndarray, body: AdversarialBody, settings: MonitorSettings
) -> tuple[AdversarialDetector, dict[str, Any]]:
    """The detector `body` configures, its threshold fitted on `clean` rows with one call of the model, and what a
    restart needs of it. Close its `predict` when done with it."""
    from wharf.monitor.detectors.adversarial import AdversarialDetector
    from wharf.monitor.detectors.squeezers import parse_squeezers

    if len(clean) == 0:
        raise InvalidInput(f"model '{body.model_id}' has no reference rows without missing values")
    low, high = float(clean.min()), float(clean.max())
    squeezers = parse_squeezers(body.squeezers, low, high)
    predict = _predictor(body, settings)
    try:
        detector = await AdversarialDetector.fit(predict, squeezers, clean, body.fpr)
    except BaseException:
        await predict.close()
        raise
    return detector, {"threshold": detector.threshold, "low": low, "high": high, "rows": len(clean)}


def restore_adversarial(body: AdversarialBody, kept: dict[str, Any], settings: MonitorSettings) -> AdversarialDetector:
    """The detector a previous fit found (`kept`), without calling the model."""
    from wharf.monitor.detectors.adversarial import AdversarialDetector
    from wharf.monitor.detectors.squeezers import parse_squeezers

    squeezers = parse_squeezers(body.squeezers, kept["low"], kept["high"])
    return AdversarialDetector(_predictor(body, settings), squeezers, kept["threshold"])
