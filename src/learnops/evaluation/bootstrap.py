"""Bootstrap confidence intervals that respect clustering (resample learners, not rows).

Rows from the same learner are correlated, so resampling rows treats them as independent and
gives intervals that are too narrow. Both functions here draw whole clusters with replacement and
report percentile intervals; given the same seed, the same clusters are drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from learnops.errors import LearnopsError
from learnops.io import require_columns


def _check(n_boot: int, alpha: float) -> None:
    if int(n_boot) < 1:
        raise LearnopsError("n_boot must be at least 1")
    if not 0 < alpha < 1:
        raise LearnopsError("alpha must be in (0, 1)")


def percentile_interval(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    """The percentile interval (alpha/2, 1 − alpha/2 quantiles) of the finite bootstrap
    replicates ``boot``; (nan, nan) when none is finite."""
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _draws(rng: np.random.Generator, n_boot: int, n_clusters: int) -> np.ndarray:
    return rng.integers(0, n_clusters, size=(int(n_boot), n_clusters))


def cluster_bootstrap_ci(
    df: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    cluster_col: str | None = "learner_hash",
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, low, high): ``statistic(df)`` and its percentile bootstrap interval.

    Each replicate draws as many clusters (distinct ``cluster_col`` values) as the data has, with
    replacement, and keeps all rows of every drawn cluster (a cluster drawn twice appears twice).
    ``cluster_col=None`` resamples rows (the naive bootstrap). Replicates where ``statistic``
    returns a non-finite value are ignored. Deterministic given ``seed``.
    """
    out = cluster_bootstrap_cis(
        df, lambda d: {"s": float(statistic(d))}, cluster_col, n_boot, alpha, seed
    )
    return out["s"]


def cluster_bootstrap_cis(
    df: pd.DataFrame,
    statistics: Callable[[pd.DataFrame], Mapping[str, float]],
    cluster_col: str | None = "learner_hash",
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Several statistics at once: ``statistics(df)`` returns a dict of floats; every key gets
    (estimate, low, high) from the same resampled clusters as :func:`cluster_bootstrap_ci` (one
    resampling per replicate, so differences between the statistics are paired)."""
    _check(n_boot, alpha)
    if len(df) == 0:
        raise LearnopsError("cannot bootstrap an empty table")
    estimate = {k: float(v) for k, v in statistics(df).items()}
    rng = np.random.default_rng(seed)
    if cluster_col is None:
        groups = [np.array([i]) for i in range(len(df))]
    else:
        require_columns(df, [cluster_col], what="bootstrap input")
        codes, _ = pd.factorize(df[cluster_col], use_na_sentinel=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes))
        groups = np.split(order, bounds[:-1])
    draws = _draws(rng, n_boot, len(groups))
    boot = np.empty((draws.shape[0], len(estimate)))
    for b, row in enumerate(draws):
        rows = np.concatenate([groups[g] for g in row])
        values = statistics(df.iloc[rows])
        boot[b] = [float(values[k]) for k in estimate]
    return {
        k: (v, *percentile_interval(boot[:, j], alpha)) for j, (k, v) in enumerate(estimate.items())
    }


def bootstrap_mean_ci(
    values: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high) by a vectorized (cluster) bootstrap of the row mean.

    Same resampling scheme and random draws as :func:`cluster_bootstrap_ci` with ``statistic`` =
    mean (``clusters=None`` resamples rows), computed from per-cluster sums and counts.
    """
    _check(n_boot, alpha)
    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or y.size == 0:
        raise LearnopsError("values must be a non-empty 1-D array")
    if not np.all(np.isfinite(y)):
        raise LearnopsError("values contain missing or infinite values")
    rng = np.random.default_rng(seed)
    if clusters is None:
        sums, counts = y, np.ones_like(y)
    else:
        c = np.asarray(clusters)
        if c.shape != y.shape:
            raise LearnopsError("clusters must have one entry per value")
        codes, _ = pd.factorize(pd.Series(c), use_na_sentinel=False)
        sums = np.bincount(codes, weights=y)
        counts = np.bincount(codes).astype(float)
    draws = _draws(rng, n_boot, sums.shape[0])
    boot = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = percentile_interval(boot, alpha)
    return float(y.mean()), low, high
