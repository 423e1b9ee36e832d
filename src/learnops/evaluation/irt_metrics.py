"""Metrics of binary probability predictions (e.g. the IRT model's P(correct)), overall and per
group; the definitions are in :mod:`learnops.evaluation.metrics`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from learnops.errors import LearnopsError
from learnops.evaluation.metrics import binary_metrics

__all__ = ["binary_metrics", "by_group"]


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
