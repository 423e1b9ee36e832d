"""Calibration: expected / maximum calibration error and reliability tables.

Multiclass functions use top-label (confidence) calibration: each row's confidence is its largest
probability and it is "correct" when that arg-max class is the true one. Binary functions calibrate
a probability of a positive outcome (e.g. IRT's P(correct)) against observed 0/1 outcomes.

Bins are right-closed intervals (lo, hi], the first one also holding its left edge. ``uniform``
splits [0, 1] into equal widths; ``quantile`` uses quantiles of the scores (duplicate edges from
tied scores are merged, so there may be fewer bins than asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation._validate import as_binary, as_label_index, as_prob_vector, as_proba

Strategy = Literal["uniform", "quantile"]

TABLE_COLUMNS = ("bin", "lower", "upper", "count", "mean_confidence", "accuracy", "gap")


def bin_edges(
    scores: npt.ArrayLike, n_bins: int = 15, strategy: Strategy = "uniform"
) -> np.ndarray:
    """Bin edges over [0, 1] for ``scores``: equal widths or score quantiles."""
    if int(n_bins) < 1:
        raise LearnopsError("n_bins must be at least 1")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, int(n_bins) + 1)
    if strategy == "quantile":
        s = np.asarray(scores, dtype=float)
        edges = np.quantile(s, np.linspace(0.0, 1.0, int(n_bins) + 1))
        edges[0], edges[-1] = 0.0, 1.0
        return np.unique(edges)
    raise LearnopsError(f"strategy must be 'uniform' or 'quantile', not {strategy!r}")


def _table(score: np.ndarray, hit: np.ndarray, n_bins: int, strategy: Strategy) -> pd.DataFrame:
    edges = bin_edges(score, n_bins, strategy)
    nb = len(edges) - 1
    idx = np.searchsorted(edges[1:-1], score, side="left")
    count = np.bincount(idx, minlength=nb)
    sum_conf = np.bincount(idx, weights=score, minlength=nb)
    sum_hit = np.bincount(idx, weights=hit, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, sum_conf / np.maximum(count, 1), np.nan)
        acc = np.where(count > 0, sum_hit / np.maximum(count, 1), np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(nb),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.astype(int),
            "mean_confidence": mean_conf,
            "accuracy": acc,
            "gap": acc - mean_conf,
        }
    )


def _ece_from_table(table: pd.DataFrame) -> float:
    filled = table[table["count"] > 0]
    n = filled["count"].sum()
    return float(np.sum(filled["count"] / n * np.abs(filled["gap"])))


def _mce_from_table(table: pd.DataFrame) -> float:
    filled = table[table["count"] > 0]
    return float(np.max(np.abs(filled["gap"])))


def _top_label(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    p = as_proba(proba, n_classes=len(labels))
    y = as_label_index(y_true, [str(lab) for lab in labels])
    if y.shape[0] != p.shape[0]:
        raise LearnopsError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    conf = p.max(axis=1)
    hit = (np.argmax(p, axis=1) == y).astype(float)
    return conf, hit


def reliability_table(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> pd.DataFrame:
    """Top-label reliability table: per confidence bin, count, mean confidence, accuracy and
    gap = accuracy - mean confidence (empty bins kept with NaN statistics)."""
    conf, hit = _top_label(y_true, proba, labels)
    return _table(conf, hit, n_bins, strategy)


def ece(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> float:
    """Top-label expected calibration error: sum over bins of (count/n)·|accuracy − confidence|."""
    return _ece_from_table(reliability_table(y_true, proba, n_bins, strategy, labels))


def mce(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    labels: Sequence[str] = ACTIONS,
) -> float:
    """Top-label maximum calibration error: the largest |accuracy − confidence| over non-empty
    bins."""
    return _mce_from_table(reliability_table(y_true, proba, n_bins, strategy, labels))


def _binary_inputs(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yy = as_binary(y, "y")
    if yy.shape[0] == 0:
        raise LearnopsError("no rows to evaluate")
    return yy, as_prob_vector(p, yy.shape[0], "p")


def binary_calibration_table(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> pd.DataFrame:
    """Reliability table of a probability ``p`` of outcome 1 against observed 0/1 ``y``.

    Columns as in :func:`reliability_table`: ``mean_confidence`` is the mean predicted
    probability in the bin and ``accuracy`` the observed rate of 1s.
    """
    yy, pp = _binary_inputs(y, p)
    return _table(pp, yy, n_bins, strategy)


def ece_binary(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """Expected calibration error of a binary probability: sum over bins of
    (count/n)·|observed rate − mean predicted probability|."""
    return _ece_from_table(binary_calibration_table(y, p, n_bins, strategy))


def mce_binary(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """Maximum calibration error of a binary probability over non-empty bins."""
    return _mce_from_table(binary_calibration_table(y, p, n_bins, strategy))
