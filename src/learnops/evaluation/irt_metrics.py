"""Metrics for binary probability predictions, e.g. the IRT model's P(correct)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from learnops.errors import LearnopsError
from learnops.evaluation._validate import as_binary, as_prob_vector
from learnops.evaluation.calibration import ece_binary


def binary_metrics(
    y: npt.ArrayLike, p: npt.ArrayLike, threshold: float = 0.5, n_bins: int = 10
) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of ``p ≥ threshold``; RMSE and MAE of p against y; AUC
    (NaN when y has one class); log-loss; Brier; ECE (uniform bins); n, base rate and mean p."""
    yy = as_binary(y, "y")
    if yy.size == 0:
        raise LearnopsError("no rows to evaluate")
    pp = as_prob_vector(p, yy.size, "p")
    pred = (pp >= threshold).astype(float)
    prec, rec, f1, _ = precision_recall_fscore_support(
        yy, pred, average="binary", pos_label=1.0, zero_division=0
    )
    both = len(np.unique(yy)) == 2
    return {
        "n": int(yy.size),
        "base_rate": float(yy.mean()),
        "mean_p": float(pp.mean()),
        "accuracy": float(accuracy_score(yy, pred)),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(f1),
        "rmse": float(np.sqrt(np.mean((pp - yy) ** 2))),
        "mae": float(np.mean(np.abs(pp - yy))),
        "auc": float(roc_auc_score(yy, pp)) if both else float("nan"),
        "log_loss": float(log_loss(yy, pp, labels=[0.0, 1.0])),
        "brier": float(brier_score_loss(yy, pp, pos_label=1.0)),
        "ece": ece_binary(yy, pp, n_bins=n_bins),
    }


def by_group(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    groups: npt.ArrayLike,
    threshold: float = 0.5,
    n_bins: int = 10,
) -> pd.DataFrame:
    """:func:`binary_metrics` per group (e.g. per module), one row per group sorted by group."""
    yy = np.asarray(y)
    pp = np.asarray(p)
    gg = pd.Series(np.asarray(groups))
    if not (yy.shape[0] == pp.shape[0] == gg.shape[0]):
        raise LearnopsError("y, p and groups must have the same length")
    rows = []
    for key, idx in gg.groupby(gg, sort=True, dropna=False).indices.items():
        m = binary_metrics(yy[idx], pp[idx], threshold=threshold, n_bins=n_bins)
        rows.append({"group": key, **m})
    return pd.DataFrame(rows).set_index("group")
