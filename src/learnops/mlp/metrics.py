"""Classification metrics for the decision model and its baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.mlp.calibration import expected_calibration_error

__all__ = ["classification_metrics", "encode_actions", "per_class_accuracy"]


def encode_actions(actions: pd.Series | np.ndarray, what: str = "decisions") -> np.ndarray:
    """Action names → integer codes in ACTIONS order; unknown or missing actions are an error."""
    s = pd.Series(np.asarray(actions, dtype=object))
    mapped = s.map({a: i for i, a in enumerate(ACTIONS)})
    bad = mapped.isna().to_numpy()
    if bad.any():
        unknown = sorted({str(v) for v in s[bad].tolist()})[:10]
        raise LearnopsError(
            f"{what}: {int(bad.sum())} row(s) with unknown or missing action: {', '.join(unknown)} "
            f"(expected one of: {', '.join(ACTIONS)})"
        )
    return mapped.to_numpy(dtype=np.int64)


def classification_metrics(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, NLL, ECE, Brier score and macro F1 of probabilistic predictions."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n, k = proba.shape
    pred = proba.argmax(axis=1)
    if n == 0:
        nan = float("nan")
        return {"accuracy": nan, "nll": nan, "ece": nan, "brier": nan, "macro_f1": nan}
    onehot = np.eye(k)[y]
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn > 0:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": float((pred == y).mean()),
        "nll": float(-np.log(np.clip(proba[np.arange(n), y], 1e-12, None)).mean()),
        "ece": expected_calibration_error(y, proba, n_bins),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
    }


def per_class_accuracy(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Per true action: support, recall (accuracy on that class), precision."""
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(proba).argmax(axis=1)
    rows = []
    for c, name in enumerate(ACTIONS):
        support = int((y == c).sum())
        predicted = int((pred == c).sum())
        hit = int(((y == c) & (pred == c)).sum())
        rows.append(
            {
                "action": name,
                "support": support,
                "recall": hit / support if support else float("nan"),
                "precision": hit / predicted if predicted else float("nan"),
            }
        )
    return pd.DataFrame(rows)
