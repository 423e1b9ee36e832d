"""The metric definitions of the package, and the one rule that compares a metric with a target.

Every other module (training, gates, retraining, the evaluation report, the IRT stage) computes
its numbers here. Multiclass functions take integer class indices ``y`` (0..K-1) and an (n, K)
probability matrix; binary functions take 0/1 outcomes ``y`` and probabilities ``p`` of a 1.
A value that is undefined for the data (AUC with one class, any metric of zero rows) is
``float("nan")``; :func:`learnops.io.jsonable` writes it as ``null``.

Calibration bins are right-closed intervals (lo, hi], the first one also holding its left edge.
``uniform`` splits [0, 1] into equal widths; ``quantile`` uses quantiles of the scores (duplicate
edges from tied scores are merged, so there may be fewer bins than asked).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from learnops.errors import LearnopsError

Direction = Literal["higher", "lower"]
Strategy = Literal["uniform", "quantile"]

#: Probabilities are clipped to [EPS, 1 − EPS] inside logarithms (as scikit-learn does).
EPS = float(np.finfo(np.float64).eps)
NAN = float("nan")

#: Which way is better for each metric name (used by gates comparing with production).
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "higher",
    "macro_f1": "higher",
    "f1": "higher",
    "precision": "higher",
    "recall": "higher",
    "auc": "higher",
    "ml_usage": "higher",
    "nll": "lower",
    "log_loss": "lower",
    "brier": "lower",
    "ece": "lower",
    "mce": "lower",
    "calibration_error": "lower",
    "rmse": "lower",
    "mae": "lower",
    "latency_ms": "lower",
}

TABLE_COLUMNS = ("bin", "lower", "upper", "count", "mean_confidence", "accuracy", "gap")


# -- multiclass --------------------------------------------------------------------------------
def _labels(y: npt.ArrayLike) -> np.ndarray:
    return np.asarray(y, dtype=np.int64).reshape(-1)


def _matrix(y: np.ndarray, proba: npt.ArrayLike) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise LearnopsError(f"proba must be ({y.shape[0]}, K), got shape {p.shape}")
    return p


def accuracy(y: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Share of rows whose predicted class equals the true class (NaN for no rows)."""
    yy, pp = np.asarray(y).reshape(-1), np.asarray(pred).reshape(-1)
    return float(np.mean(yy == pp)) if yy.size else NAN


def confusion(y: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> np.ndarray:
    """(K, K) counts: rows = true class, columns = predicted class."""
    yy, pp = _labels(y), _labels(pred)
    k = int(n_classes)
    return np.bincount(yy * k + pp, minlength=k * k)[: k * k].reshape(k, k)


def per_class(
    y: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int, zero_division: float = 0.0
) -> pd.DataFrame:
    """Per class 0..K-1: support, predicted count, precision, recall and
    F1 = 2·TP / (2·TP + FP + FN); a 0/0 ratio is ``zero_division`` (0 as in scikit-learn's
    ``zero_division=0``, or NaN)."""
    cm = confusion(y, pred, n_classes).astype(float)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.full(len(num), float(zero_division)), where=den > 0)

    return pd.DataFrame(
        {
            "support": support.astype(int),
            "predicted": predicted.astype(int),
            "precision": ratio(tp, predicted),
            "recall": ratio(tp, support),
            "f1": ratio(2 * tp, support + predicted),
        }
    )


def macro_f1(y: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Unweighted mean of the F1 of all ``n_classes`` classes; a class that is neither present
    nor predicted counts as 0 (scikit-learn's ``f1_score(labels=range(K), average="macro",
    zero_division=0)``). NaN for no rows."""
    if _labels(y).size == 0:
        return NAN
    return float(per_class(y, pred, n_classes)["f1"].mean())


def log_loss(y: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """Multiclass log-loss (mean negative log-likelihood, natural log) of the true classes."""
    yy = _labels(y)
    p = _matrix(yy, proba)
    if yy.size == 0:
        return NAN
    py = np.clip(p[np.arange(yy.size), yy], EPS, 1.0 - EPS)
    return float(-np.mean(np.log(py)))


def brier(y: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """Multiclass Brier score: mean over rows of Σ_k (p_k − 1[y = k])² (ranges 0..2)."""
    yy = _labels(y)
    p = _matrix(yy, proba)
    if yy.size == 0:
        return NAN
    onehot = np.zeros_like(p)
    onehot[np.arange(yy.size), yy] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def top_label(y: npt.ArrayLike, proba: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, hit): each row's largest probability and whether its arg-max is right."""
    yy = _labels(y)
    p = _matrix(yy, proba)
    return p.max(axis=1), (np.argmax(p, axis=1) == yy).astype(float)


# -- calibration -------------------------------------------------------------------------------
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


def calibration_table(
    score: npt.ArrayLike, hit: npt.ArrayLike, n_bins: int = 15, strategy: Strategy = "uniform"
) -> pd.DataFrame:
    """Per score bin: bounds, count, mean score (``mean_confidence``), observed rate of hits
    (``accuracy``) and gap = accuracy − mean_confidence; empty bins kept with NaN statistics."""
    s = np.asarray(score, dtype=float).reshape(-1)
    h = np.asarray(hit, dtype=float).reshape(-1)
    edges = bin_edges(s, n_bins, strategy if s.size else "uniform")
    nb = len(edges) - 1
    idx = np.searchsorted(edges[1:-1], s, side="left")
    count = np.bincount(idx, minlength=nb)
    sum_conf = np.bincount(idx, weights=s, minlength=nb)
    sum_hit = np.bincount(idx, weights=h, minlength=nb)
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


def ece_of_table(table: pd.DataFrame) -> float:
    """Σ over non-empty bins of (count / n)·|gap| (NaN for an empty table)."""
    filled = table[table["count"] > 0]
    n = filled["count"].sum()
    return float(np.sum(filled["count"] / n * np.abs(filled["gap"]))) if n else NAN


def mce_of_table(table: pd.DataFrame) -> float:
    """The largest |gap| over non-empty bins (NaN for an empty table)."""
    filled = table[table["count"] > 0]
    return float(np.max(np.abs(filled["gap"]))) if len(filled) else NAN


def ece(
    y: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = 15, strategy: Strategy = "uniform"
) -> float:
    """Top-label expected calibration error: Σ over confidence bins of
    (count/n)·|accuracy − mean confidence| (equal-width bins by default; NaN for no rows)."""
    return ece_of_table(calibration_table(*top_label(y, proba), n_bins, strategy))


def ece_binary(
    y: npt.ArrayLike, p: npt.ArrayLike, n_bins: int = 10, strategy: Strategy = "uniform"
) -> float:
    """Expected calibration error of a probability of outcome 1: Σ over bins of
    (count/n)·|observed rate − mean predicted probability| (NaN for no rows)."""
    return ece_of_table(calibration_table(p, y, n_bins, strategy))


# -- binary ------------------------------------------------------------------------------------
def _binary(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y, dtype=float).reshape(-1)
    pp = np.asarray(p, dtype=float).reshape(-1)
    if yy.shape != pp.shape:
        raise LearnopsError(f"y has {yy.size} rows but p has {pp.size}")
    return yy, pp


def auc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(p of a random 1 > p of a random 0), ties counting half
    (Mann–Whitney). NaN when ``y`` holds one class only."""
    from scipy.stats import rankdata

    yy, pp = _binary(y, p)
    n1 = float(np.sum(yy == 1))
    n0 = float(yy.size - n1)
    if n1 == 0 or n0 == 0:
        return NAN
    ranks = rankdata(pp)
    return float((np.sum(ranks[yy == 1]) - n1 * (n1 + 1) / 2) / (n1 * n0))


def binary_log_loss(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean of −[y·log p + (1 − y)·log(1 − p)] (natural log; NaN for no rows)."""
    yy, pp = _binary(y, p)
    if yy.size == 0:
        return NAN
    pc = np.clip(pp, EPS, 1.0 - EPS)
    return float(-np.mean(yy * np.log(pc) + (1 - yy) * np.log(1 - pc)))


def binary_brier(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean of (p − y)² (NaN for no rows)."""
    yy, pp = _binary(y, p)
    return float(np.mean((pp - yy) ** 2)) if yy.size else NAN


def rmse(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Root mean squared error of probabilities against 0/1 outcomes."""
    b = binary_brier(y, p)
    return math.sqrt(b) if math.isfinite(b) else NAN


def mae(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean absolute error of probabilities against 0/1 outcomes."""
    yy, pp = _binary(y, p)
    return float(np.mean(np.abs(pp - yy))) if yy.size else NAN


def precision_recall_f1(y: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class of 0/1 predictions (0 where 0/0)."""
    yy, hh = _binary(y, pred)
    tp = float(np.sum((yy == 1) & (hh == 1)))
    n_pred, n_true = float(np.sum(hh == 1)), float(np.sum(yy == 1))
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0
    return precision, recall, f1


# -- the metric dicts --------------------------------------------------------------------------
def classification_metrics(
    y: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = 15
) -> dict[str, float]:
    """Accuracy, NLL (multiclass log-loss), ECE (top-label, ``n_bins`` equal-width bins), Brier
    and macro-F1 of class probabilities (all NaN for no rows): the decision model's metrics."""
    yy = _labels(y)
    p = _matrix(yy, proba)
    if yy.size == 0:
        return {"accuracy": NAN, "nll": NAN, "ece": NAN, "brier": NAN, "macro_f1": NAN}
    pred = p.argmax(axis=1)
    return {
        "accuracy": accuracy(yy, pred),
        "nll": log_loss(yy, p),
        "ece": ece(yy, p, n_bins),
        "brier": brier(yy, p),
        "macro_f1": macro_f1(yy, pred, p.shape[1]),
    }


def binary_metrics(
    y: npt.ArrayLike, p: npt.ArrayLike, threshold: float = 0.5, n_bins: int = 10
) -> dict[str, Any]:
    """Metrics of probabilities ``p`` of outcome 1 (e.g. IRT's P(correct)) against 0/1 ``y``:
    n, base rate, mean p; accuracy, precision, recall and F1 of ``p ≥ threshold``; RMSE, MAE,
    AUC (NaN with one class), log-loss, Brier and ECE (``n_bins`` equal-width bins)."""
    from learnops.evaluation._validate import as_binary, as_prob_vector

    yy = as_binary(y, "y")
    if yy.size == 0:
        raise LearnopsError("no rows to evaluate")
    pp = as_prob_vector(p, yy.size, "p")
    hard = (pp >= threshold).astype(float)
    precision, recall, f1 = precision_recall_f1(yy, hard)
    return {
        "n": int(yy.size),
        "base_rate": float(yy.mean()),
        "mean_p": float(pp.mean()),
        "accuracy": accuracy(yy, hard),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "rmse": rmse(yy, pp),
        "mae": mae(yy, pp),
        "auc": auc(yy, pp),
        "log_loss": binary_log_loss(yy, pp),
        "brier": binary_brier(yy, pp),
        "ece": ece_binary(yy, pp, n_bins),
    }


# -- comparing with a target -------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def meets(value: Any, target: Any, direction: Direction) -> bool:
    """True when ``value`` is a finite number at least (``higher``) or at most (``lower``)
    ``target``; a missing or non-finite value or target never meets it."""
    return bool(check("value", value, target, direction)["passed"])


def check(
    name: str, value: Any, target: Any, direction: Direction, label: str | None = None
) -> dict[str, Any]:
    """One comparison of a measured ``value`` with a ``target``: higher → value ≥ target,
    lower → value ≤ target; a missing or non-finite value (or target) fails.

    Returns name, value (None unless finite), target, direction, comparison (``>=``/``<=``),
    passed, and reason (one readable sentence).
    """
    if direction not in ("higher", "lower"):
        raise LearnopsError(f"direction must be 'higher' or 'lower', not {direction!r}")
    label = label or name
    op = ">=" if direction == "higher" else "<="
    v, t = _number(value), _number(target)
    t_ok = t is not None and math.isfinite(t)
    shown = f"{t:g}" if t_ok else "undefined"
    if v is None or not math.isfinite(v):
        passed = False
        what = "was not measured" if v is None else f"is undefined ({v})"
        reason = f"{label} {what} (target {op} {shown})"
        v = None
    elif not t_ok:
        passed = False
        reason = f"{label} {v:.4g} cannot be compared: the target is undefined"
    else:
        passed = v >= t if direction == "higher" else v <= t
        if passed:
            word = "meets the minimum" if direction == "higher" else "meets the maximum"
        else:
            word = "is below the minimum" if direction == "higher" else "is above the maximum"
        reason = f"{label} {v:.4g} {word} {t:g}"
    return {
        "name": name,
        "value": v,
        "target": t if t_ok else None,
        "direction": direction,
        "comparison": op,
        "passed": bool(passed),
        "reason": reason,
    }


def direction_of(metric: str) -> Direction:
    """Whether a higher or a lower value of ``metric`` is better."""
    try:
        return DIRECTIONS[metric]
    except KeyError:
        raise LearnopsError(
            f"unknown metric {metric!r}: use one of {', '.join(sorted(DIRECTIONS))}"
        ) from None


def lookup(metrics: Mapping[str, Any], *aliases: str) -> Any:
    """The first non-None value among ``aliases`` in ``metrics`` (None when none is there)."""
    for key in aliases:
        if key in metrics and metrics[key] is not None:
            return metrics[key]
    return None
