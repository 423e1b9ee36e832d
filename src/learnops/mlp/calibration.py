"""Temperature scaling of the decision model's logits (calibration metrics are in
:mod:`learnops.evaluation.metrics`; the two views below keep this module's column names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from learnops.evaluation import metrics

__all__ = [
    "apply_temperature",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_table",
]


def apply_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities softmax(logits / T)."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def _nll(y: np.ndarray, logits: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer labels under softmax(logits / T), computed in
    log space (the objective of :func:`fit_temperature`)."""
    y = np.asarray(y, dtype=np.int64)
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(
    y: np.ndarray, logits: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature T > 0 minimizing validation NLL (1-D bounded search on log T)."""
    y = np.asarray(y, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    if len(y) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(
        lambda lt: _nll(y, logits, float(np.exp(lt))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-10},  # converged far below float noise: the same on every CPU
    )
    return float(np.exp(res.x))


def reliability_table(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Per equal-width confidence bin: bounds, count, mean confidence, accuracy (empty bins
    kept)."""
    t = metrics.calibration_table(*metrics.top_label(y, proba), n_bins)
    return pd.DataFrame(
        {
            "bin_low": t["lower"],
            "bin_high": t["upper"],
            "count": t["count"],
            "confidence": t["mean_confidence"],
            "accuracy": t["accuracy"],
        }
    )


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins (:func:`learnops.evaluation.metrics.ece`); NaN for no
    rows."""
    return metrics.ece(y, proba, n_bins)
