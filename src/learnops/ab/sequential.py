"""Anytime-valid inference for A/B comparisons: the asymptotic confidence sequence (CS) of
Waudby-Smith, Arnold, Wu, Howard & Ramdas (2021), "Time-uniform central limit theory and
asymptotic confidence sequences" (arXiv:2103.06476), as GrowthBook and Eppo use it.

Why this method (and not mSPRT): it needs only the estimate and its standard error — the same
inputs as the fixed-horizon analysis — so it works unchanged for learner means, CUPED-adjusted
means and delta-method ratio metrics, and its interval is centred on the usual estimate. Its
guarantee: with probability ≥ 1 − alpha the interval covers the true difference *at every
sample size simultaneously*, so a running experiment may be looked at every day (and stopped at
any look) without inflating the false-positive rate.

The interval for a difference estimated from N units (here learners in the two arms compared)
with standard error ``se`` is ``diff ± se · m(N)`` where

    m(N) = sqrt(N) · sqrt( 2 (N ρ² + 1) / (N² ρ²) · log( sqrt(N ρ² + 1) / alpha ) ).

**Tuning parameter** ρ (``ab.sequential_tuning_n`` = n*): the CS is tightest at N = n*, with
ρ² = (−2 log alpha + log(−2 log alpha + 1)) / n* (the paper's eq. for the normal-mixture
boundary). Choose n* ≈ the learners you expect in one comparison (treatment + control) when you
plan to decide; it must be fixed before looking at the data. At N = n* and alpha = 0.05 the
half-width is ≈ 3.0 standard errors (1.96 for a fixed-horizon CI); the cost of being wrong about
n* is mild (n* 4× too large or too small: ≈ 3.3 standard errors).

The anytime-valid p-value is the smallest alpha whose CS excludes 0:
``p = min(1, sqrt(N ρ² + 1) · exp(−z² N ρ² / (2 (N ρ² + 1))))`` with z = diff / se (ρ fixed at
the nominal alpha). Holm's correction of anytime-valid p-values controls the family-wise error
over all looks (its proof only needs P(inf_t p_t ≤ u) ≤ u for each true null); BH controls the
FDR at each look under positive dependence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Default n*: learners in one comparison at which the CS is tightest (``ab.sequential_tuning_n``).
DEFAULT_TUNING_N = 1000


def rho_squared(tuning_n: float, alpha: float = 0.05) -> float:
    """ρ² that makes the asymptotic CS tightest at ``tuning_n`` units (for level alpha)."""
    if not tuning_n > 0:
        raise ValueError(f"tuning_n must be > 0, got {tuning_n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    a = -2.0 * math.log(alpha)
    return (a + math.log(a + 1.0)) / float(tuning_n)


def cs_multiplier(n: Any, alpha: float = 0.05, tuning_n: float = DEFAULT_TUNING_N) -> np.ndarray:
    """m(N): the CS half-width in standard errors after ``n`` units (vectorized; NaN for n ≤ 0)."""
    n = np.asarray(n, dtype=float)
    r2 = rho_squared(tuning_n, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        nr = n * r2
        log_term = np.log(np.sqrt(nr + 1.0) / alpha)
        m = np.sqrt(n) * np.sqrt(2.0 * (nr + 1.0) / (n * n * r2) * log_term)
    return np.where(n > 0, m, np.nan)


def confidence_sequence(
    diff: Any, se: Any, n: Any, alpha: float = 0.05, tuning_n: float = DEFAULT_TUNING_N
) -> dict[str, np.ndarray]:
    """The (1 − alpha) asymptotic CS of a difference: ``ci_low``, ``ci_high``, ``half_width``,
    ``multiplier`` and the anytime-valid ``p_value`` (of diff = 0)."""
    diff, se = np.asarray(diff, dtype=float), np.asarray(se, dtype=float)
    m = cs_multiplier(n, alpha, tuning_n)
    half = m * se
    return {
        "ci_low": diff - half,
        "ci_high": diff + half,
        "half_width": half,
        "multiplier": m,
        "p_value": anytime_p_value(diff, se, n, alpha, tuning_n),
    }


def anytime_p_value(
    diff: Any, se: Any, n: Any, alpha: float = 0.05, tuning_n: float = DEFAULT_TUNING_N
) -> np.ndarray:
    """The anytime-valid p-value of diff = 0: the smallest level whose CS excludes 0 (ρ fixed
    by ``tuning_n`` at the nominal alpha). NaN when se is 0 or undefined."""
    diff, se, n = (np.asarray(a, dtype=float) for a in (diff, se, n))
    r2 = rho_squared(tuning_n, alpha)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = diff / se
        nr = n * r2
        log_p = 0.5 * np.log1p(nr) - z * z * nr / (2.0 * (nr + 1.0))
        p = np.minimum(1.0, np.exp(np.minimum(log_p, 0.0)))
    return np.where(np.isfinite(z) & (n > 0), p, np.nan)


def running_min(p_values: Any) -> np.ndarray:
    """The running minimum along the last axis (NaNs ignored): anytime-valid p-values of a
    sequence of looks stay valid when each look reports the smallest p so far."""
    p = np.asarray(p_values, dtype=float)
    filled = np.where(np.isnan(p), np.inf, p)
    out = np.minimum.accumulate(filled, axis=-1)
    return np.where(np.isinf(out), np.nan, out)


def sequence_table(looks: list[dict[str, Any]], metric: str) -> Any:
    """One row per look × treatment on ``metric``: learners so far, the estimate, the
    confidence sequence (``cs_low``, ``cs_high``) and the fixed-horizon CI (``fixed_low``,
    ``fixed_high``) — the inputs of the confidence-sequence figure."""
    import pandas as pd

    rows = [
        {
            "look": lk["look"],
            "n_learners": lk["n_learners"],
            "treatment": c["treatment"],
            "n_treatment": c["n_treatment"],
            "n_control": c["n_control"],
            "diff": c["diff"],
            "cs_low": c["ci_low"],
            "cs_high": c["ci_high"],
            "fixed_low": c["fixed_ci_low"],
            "fixed_high": c["fixed_ci_high"],
            "significant": c["significant"],
        }
        for lk in looks
        for c in lk["comparisons"]
        if c["metric"] == metric
    ]
    cols = ["look", "n_learners", "treatment", "n_treatment", "n_control", "diff", "cs_low"]
    cols += ["cs_high", "fixed_low", "fixed_high", "significant"]
    return pd.DataFrame(rows, columns=cols).astype({"cs_low": float, "cs_high": float})
