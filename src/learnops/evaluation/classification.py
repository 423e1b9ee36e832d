"""Multiclass classification metrics for the decision model (actions in contracts.ACTIONS order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation._validate import as_label_index, as_proba


def multiclass_brier(y_idx: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """Mean over rows of sum_k (p_k - 1[y = k])^2 (ranges 0..2)."""
    p = np.asarray(proba, dtype=float)
    y = np.asarray(y_idx, dtype=int)
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def classification_report(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    labels: Sequence[str] = ACTIONS,
) -> dict[str, Any]:
    """Accuracy, per-class and averaged precision/recall/F1, confusion matrices, log-loss, Brier.

    ``y_true`` holds label strings (members of ``labels``) or integer class indices; ``proba`` is
    (n, K) with columns in ``labels`` order. Predictions are the arg-max class. Classes absent from
    ``y_true`` get support 0 (their recall and F1 are 0; the confusion row is all zeros). The result
    is JSON-serializable: matrices are nested lists with rows = true class, columns = predicted.
    """
    labels = [str(lab) for lab in labels]
    k = len(labels)
    if k < 2:
        raise LearnopsError("need at least two classes")
    p = as_proba(proba, n_classes=k)
    y = as_label_index(y_true, labels)
    if y.shape[0] != p.shape[0]:
        raise LearnopsError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    pred = np.argmax(p, axis=1)
    idx = list(range(k))

    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=idx, average=None, zero_division=0
    )
    averages: dict[str, dict[str, float]] = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y, pred, labels=idx, average=avg, zero_division=0
        )
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}

    cm = confusion_matrix(y, pred, labels=idx)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=float), where=row_sums > 0)

    per_class = {
        lab: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    return {
        "n": int(y.shape[0]),
        "labels": labels,
        "accuracy": float(accuracy_score(y, pred)),
        "per_class": per_class,
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": cm_norm.tolist(),
        "log_loss": float(log_loss(y, p, labels=idx)),
        "brier": multiclass_brier(y, p),
    }
