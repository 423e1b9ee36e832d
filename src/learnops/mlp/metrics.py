"""The decision model's labels: action encoding, and a per-action view of the metric
definitions in :mod:`learnops.evaluation.metrics` (where the model's metrics are computed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation.metrics import per_class

__all__ = ["encode_actions", "per_class_accuracy"]


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


def per_class_accuracy(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Per true action: support, recall (accuracy on that class), precision (NaN where 0/0)."""
    pred = np.asarray(proba).argmax(axis=1)
    table = per_class(y, pred, len(ACTIONS), zero_division=float("nan"))
    table.insert(0, "action", list(ACTIONS))
    return table[["action", "support", "recall", "precision"]]
