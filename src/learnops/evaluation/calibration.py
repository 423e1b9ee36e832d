"""Calibration tables and errors with input checks and label names.

The definitions (bins, ECE, MCE) are in :mod:`learnops.evaluation.metrics`; these wrappers accept
label strings as well as class indices and raise LearnopsError on malformed input. Multiclass
functions use top-label (confidence) calibration; binary ones calibrate a probability of a
positive outcome (e.g. IRT's P(correct)) against observed 0/1 outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation import metrics as m
from learnops.evaluation._validate import as_binary, as_label_index, as_prob_vector, as_proba
from learnops.evaluation.metrics import TABLE_COLUMNS, Strategy, bin_edges

__all__ = [
    "TABLE_COLUMNS",
    "Strategy",
    "bin_edges",
    "binary_calibration_table",
    "ece",
    "ece_binary",
    "mce",
    "reliability_table",
]


def _top_label(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    p = as_proba(proba, n_classes=len(labels))
    y = as_label_index(y_true, [str(lab) for lab in labels])
    if y.shape[0] != p.shape[0]:
        raise LearnopsError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    return m.top_label(y, p)


def reliability_table(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> pd.DataFrame:
    """Top-label reliability table: per confidence bin, count, mean confidence, accuracy and
    gap = accuracy - mean confidence (empty bins kept with NaN statistics)."""
    return m.calibration_table(*_top_label(y_true, proba, labels), n_bins, strategy)


def ece(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> float:
    """Top-label expected calibration error (:func:`learnops.evaluation.metrics.ece`)."""
    return m.ece_of_table(reliability_table(y_true, proba, n_bins, strategy, labels))


def mce(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> float:
    """Top-label maximum calibration error: the largest |accuracy − confidence| over non-empty
    bins."""
    return m.mce_of_table(reliability_table(y_true, proba, n_bins, strategy, labels))


def binary_calibration_table(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> pd.DataFrame:
    """Reliability table of a probability ``p`` of outcome 1 against observed 0/1 ``y``:
    ``mean_confidence`` is the mean predicted probability in the bin, ``accuracy`` the observed
    rate of 1s."""
    yy = as_binary(y, "y")
    if yy.shape[0] == 0:
        raise LearnopsError("no rows to evaluate")
    return m.calibration_table(as_prob_vector(p, yy.shape[0], "p"), yy, n_bins, strategy)


def ece_binary(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """Expected calibration error of a binary probability
    (:func:`learnops.evaluation.metrics.ece_binary`)."""
    return m.ece_of_table(binary_calibration_table(y, p, n_bins, strategy))
