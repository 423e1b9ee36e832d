"""The decision model's classification report (actions in contracts.ACTIONS order), built from
the definitions in :mod:`learnops.evaluation.metrics`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation import metrics as m
from learnops.evaluation._validate import as_label_index, as_proba


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

    table = m.per_class(y, pred, k)
    scores = table[["precision", "recall", "f1"]]
    weights = table["support"] / table["support"].sum()
    averages = {
        "macro": {c: float(scores[c].mean()) for c in scores},
        "weighted": {c: float((scores[c] * weights).sum()) for c in scores},
    }
    cm = m.confusion(y, pred, k)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=float), where=row_sums > 0)
    per_class = {
        lab: {
            "precision": float(table.at[i, "precision"]),
            "recall": float(table.at[i, "recall"]),
            "f1": float(table.at[i, "f1"]),
            "support": int(table.at[i, "support"]),
        }
        for i, lab in enumerate(labels)
    }
    return {
        "n": int(y.shape[0]),
        "labels": labels,
        "accuracy": m.accuracy(y, pred),
        "per_class": per_class,
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": cm_norm.tolist(),
        "log_loss": m.log_loss(y, p),
        "brier": m.brier(y, p),
    }
