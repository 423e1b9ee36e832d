"""Paired comparison of several models' probabilities on the same decisions, learner bootstrap.

Every replicate draws the learners with replacement (a row weighs as many times as its learner
was drawn) and scores every model on the same draw, so the difference of a metric between a model
and the reference has its own percentile interval (the pairing removes the between-learner noise
the models share).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError
from learnops.evaluation.slices import weighted_metrics

__all__ = ["compare_models", "weighted_recall"]


def weighted_recall(y: np.ndarray, pred: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Per class: weighted share of its rows predicted as it (NaN for a class with no rows)."""
    tot = np.bincount(y, weights=w, minlength=k)
    hit = np.bincount(y, weights=w * (pred == y), minlength=k)
    return np.divide(hit, tot, out=np.full(k, np.nan), where=tot > 0)


def _scores(
    y: np.ndarray, proba: np.ndarray, w: np.ndarray, threshold: float, n_bins: int, labels: Any
) -> dict[str, float]:
    out = weighted_metrics(y, proba, w, threshold, {}, n_bins)
    rec = weighted_recall(y, proba.argmax(axis=1), w, proba.shape[1])
    out.update({f"recall_{a}": float(r) for a, r in zip(labels, rec, strict=True)})
    return out


def compare_models(
    y: np.ndarray,
    probas: Mapping[str, np.ndarray],
    learners: Sequence[Any],
    reference: str,
    labels: Sequence[str],
    threshold: float = 0.6,
    n_boot: int = 500,
    seed: int = 0,
    n_bins: int = 15,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per (model, metric): ``estimate`` with ``ci_low``/``ci_high``, and ``diff`` (model
    − ``reference``) with ``diff_ci_low``/``diff_ci_high``. Metrics: accuracy, macro-F1, ECE
    (``n_bins`` equal-width bins), ML usage at ``threshold`` and the recall of each of
    ``labels``. ``n_boot`` 0: no intervals."""
    y = np.asarray(y, dtype=np.int64)
    if reference not in probas:
        raise LearnopsError(f"reference model {reference!r} is not among {list(probas)}")
    codes, uniq = pd.factorize(pd.Series(np.asarray(learners)), use_na_sentinel=False)
    weights = [np.ones(len(y))]
    if n_boot >= 1:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(uniq), size=(int(n_boot), len(uniq)))
        weights += [np.bincount(d, minlength=len(uniq))[codes].astype(float) for d in draws]
    vals = {
        name: [_scores(y, np.asarray(p, float), w, threshold, n_bins, labels) for w in weights]
        for name, p in probas.items()
    }
    q = [alpha / 2, 1 - alpha / 2]

    def interval(boot: np.ndarray) -> tuple[float, float]:
        boot = boot[np.isfinite(boot)]
        return tuple(float(v) for v in np.quantile(boot, q)) if boot.size else (np.nan, np.nan)

    rows = []
    for name, v in vals.items():
        for metric in v[0]:
            b = np.array([r[metric] for r in v[1:]])
            ref = np.array([r[metric] for r in vals[reference][1:]])
            lo, hi = interval(b)
            dlo, dhi = interval(b - ref)
            rows.append(
                {
                    "model": name,
                    "metric": metric,
                    "estimate": v[0][metric],
                    "ci_low": lo,
                    "ci_high": hi,
                    "diff": v[0][metric] - vals[reference][0][metric],
                    "diff_ci_low": dlo,
                    "diff_ci_high": dhi,
                }
            )
    return pd.DataFrame(rows)
