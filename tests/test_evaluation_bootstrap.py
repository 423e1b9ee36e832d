"""Cluster bootstrap: equivalence of the generic and vectorized paths, and coverage on clustered
data with a known intra-class correlation, where the naive row bootstrap undercovers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnops.errors import LearnopsError
from learnops.evaluation import bootstrap_mean_ci, cluster_bootstrap_ci

TRUE_MEAN = 0.5
ICC = 0.3


def clustered(rng: np.random.Generator, n_clusters: int = 100, size: int = 20) -> pd.DataFrame:
    """y = mean + u_learner + e, Var(u) = ICC, Var(e) = 1 - ICC."""
    u = rng.normal(0, np.sqrt(ICC), n_clusters)
    learner = np.repeat(np.arange(n_clusters), size)
    y = TRUE_MEAN + u[learner] + rng.normal(0, np.sqrt(1 - ICC), learner.size)
    return pd.DataFrame({"learner_hash": [f"L{i}" for i in learner], "y": y})


def test_generic_and_vectorized_paths_agree_and_are_deterministic():
    df = clustered(np.random.default_rng(0), n_clusters=30, size=7)
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # clusters interleaved

    def stat(d: pd.DataFrame) -> float:
        return float(d["y"].mean())

    a = cluster_bootstrap_ci(df, stat, n_boot=200, seed=7)
    b = bootstrap_mean_ci(df["y"], df["learner_hash"], n_boot=200, seed=7)
    assert a == pytest.approx(b, abs=1e-12)
    assert cluster_bootstrap_ci(df, stat, n_boot=200, seed=7) == a
    assert cluster_bootstrap_ci(df, stat, n_boot=200, seed=8) != a
    naive = cluster_bootstrap_ci(df, stat, cluster_col=None, n_boot=200, seed=7)
    assert naive == pytest.approx(bootstrap_mean_ci(df["y"], n_boot=200, seed=7), abs=1e-12)
    assert a[0] == pytest.approx(df["y"].mean())
    assert a[1] < a[0] < a[2]


def test_generic_statistic_other_than_mean():
    df = clustered(np.random.default_rng(1), n_clusters=40, size=5)
    est, lo, hi = cluster_bootstrap_ci(df, lambda d: float(d["y"].median()), n_boot=100)
    assert est == pytest.approx(df["y"].median())
    assert lo < est < hi


def test_cluster_bootstrap_covers_and_row_bootstrap_undercovers():
    rng = np.random.default_rng(2024)
    reps = 200
    cover_cluster = cover_naive = 0
    width_ratio = []
    for _ in range(reps):
        df = clustered(rng)
        _, lo, hi = bootstrap_mean_ci(
            df["y"], df["learner_hash"], n_boot=500, seed=int(rng.integers(1 << 31))
        )
        _, nlo, nhi = bootstrap_mean_ci(df["y"], None, n_boot=500, seed=int(rng.integers(1 << 31)))
        cover_cluster += lo <= TRUE_MEAN <= hi
        cover_naive += nlo <= TRUE_MEAN <= nhi
        width_ratio.append((hi - lo) / (nhi - nlo))
    cov_c, cov_n = cover_cluster / reps, cover_naive / reps
    print(f"coverage: cluster={cov_c:.3f} naive={cov_n:.3f} width ratio={np.mean(width_ratio):.2f}")
    assert abs(cov_c - 0.95) <= 0.05
    # design effect 1 + (20-1)*0.3 = 6.7: the naive interval is ~sqrt(6.7)=2.6x too narrow
    assert cov_n < 0.75
    assert np.mean(width_ratio) == pytest.approx(np.sqrt(1 + 19 * ICC), rel=0.15)


def test_bootstrap_errors():
    df = pd.DataFrame({"y": [1.0, 2.0]})
    with pytest.raises(LearnopsError, match="learner_hash"):
        cluster_bootstrap_ci(df, lambda d: d["y"].mean())
    with pytest.raises(LearnopsError, match="empty"):
        cluster_bootstrap_ci(df.iloc[:0], lambda d: 0.0, cluster_col=None)
    with pytest.raises(LearnopsError, match="alpha"):
        bootstrap_mean_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(LearnopsError, match="missing"):
        bootstrap_mean_ci([1.0, np.nan])
