"""Statistical building blocks of the A/B analysis: Welch and two-proportion tests, Holm and
Benjamini–Hochberg, SRM, CUPED and two-sample power. Test functions accept scalars or numpy
arrays (vectorized)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from learnops.errors import LearnopsError

#: Sample-ratio-mismatch threshold: flag when the chi-square p-value is below this.
SRM_ALPHA = 0.001


def welch_test(
    mean_t: Any,
    var_t: Any,
    n_t: Any,
    mean_c: Any,
    var_c: Any,
    n_c: Any,
    alpha: float = 0.05,
) -> dict[str, np.ndarray]:
    """Welch's unequal-variance t-test of mean_t − mean_c from summary statistics.

    Variances are sample variances (ddof=1). Returns diff, se, df (Welch–Satterthwaite),
    statistic, p_value (two-sided) and the (1 − alpha) CI ci_low/ci_high of the difference.
    Agrees with ``scipy.stats.ttest_ind(equal_var=False)`` and its ``confidence_interval``.
    """
    mean_t, var_t, n_t = (np.asarray(a, dtype=float) for a in (mean_t, var_t, n_t))
    mean_c, var_c, n_c = (np.asarray(a, dtype=float) for a in (mean_c, var_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        vt, vc = var_t / n_t, var_c / n_c
        se = np.sqrt(vt + vc)
        df = (vt + vc) ** 2 / (vt**2 / (n_t - 1) + vc**2 / (n_c - 1))
        diff = mean_t - mean_c
        statistic = diff / se
        p_value = 2.0 * stats.t.sf(np.abs(statistic), df)
        half = stats.t.ppf(1.0 - alpha / 2.0, df) * se
    return {
        "diff": diff,
        "se": se,
        "df": df,
        "statistic": statistic,
        "p_value": p_value,
        "ci_low": diff - half,
        "ci_high": diff + half,
    }


def two_proportion_test(
    count_t: Any, n_t: Any, count_c: Any, n_c: Any, alpha: float = 0.05
) -> dict[str, np.ndarray]:
    """Two-proportion z-test of p_t − p_c (pooled variance under H0, two-sided) with an
    unpooled Wald CI of the difference.

    Equals ``statsmodels proportions_ztest`` and ``confint_proportions_2indep(method="wald")``.
    """
    x1, n1, x2, n2 = (np.asarray(a, dtype=float) for a in (count_t, n_t, count_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        diff = p1 - p2
        pool = (x1 + x2) / (n1 + n2)
        se0 = np.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
        statistic = diff / se0
        p_value = 2.0 * stats.norm.sf(np.abs(statistic))
        # identical all-0 or all-1 samples: no evidence of a difference
        p_value = np.where((se0 == 0) & (diff == 0), 1.0, p_value)
        se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        half = stats.norm.ppf(1.0 - alpha / 2.0) * se
    return {
        "diff": diff,
        "se": se,
        "statistic": statistic,
        "p_value": p_value,
        "ci_low": diff - half,
        "ci_high": diff + half,
    }


def _step_adjust(p_values: Sequence[float] | np.ndarray, adjust_sorted) -> np.ndarray:
    """Adjusted p-values by a step procedure: ``adjust_sorted(sorted_p, m)`` maps the m
    non-NaN p-values in ascending order to their adjusted values; NaNs stay NaN and do not
    count towards the family size."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="mergesort")
    vals = np.empty(m)
    vals[order] = adjust_sorted(p[ok][order], m)
    out[ok] = vals
    return out


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control); NaNs stay NaN and do not
    count towards the family size."""
    return _step_adjust(
        p_values,
        lambda sp, m: np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * sp)),
    )


def bh(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg step-up adjusted p-values (false-discovery-rate control); NaNs stay
    NaN and do not count towards the family size. Equals statsmodels
    ``multipletests(method="fdr_bh")``."""
    return _step_adjust(
        p_values,
        lambda sp, m: np.minimum(
            1.0, np.minimum.accumulate((sp * m / np.arange(1, m + 1))[::-1])[::-1]
        ),
    )


#: multiplicity corrections by name (``ab.correction``)
CORRECTIONS = {"holm": holm, "bh": bh}


def adjust_p(p_values: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values by ``method``: ``holm`` (family-wise error) or ``bh`` (FDR)."""
    try:
        fn = CORRECTIONS[method]
    except KeyError:
        raise LearnopsError(f"correction must be holm or bh, not {method!r}") from None
    return fn(p_values)


def srm_test(
    observed: Mapping[str, int], planned: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Chi-square goodness-of-fit of group counts against the planned split (default: equal).

    ``planned`` weights are normalised; a planned group with no learners counts as 0 observed.
    ``mismatch`` is True when p < :data:`SRM_ALPHA`.
    """
    if planned is None:
        planned = {g: 1.0 for g in observed}
    unknown = sorted(set(observed) - set(planned))
    if unknown:
        raise LearnopsError(
            f"group(s) {', '.join(unknown)} not in the planned split ({', '.join(planned)})"
        )
    weights = {g: float(w) for g, w in planned.items()}
    if any(w < 0 or not math.isfinite(w) for w in weights.values()) or sum(weights.values()) <= 0:
        raise LearnopsError(f"planned split must have non-negative weights, got {dict(planned)}")
    groups = [g for g in weights if weights[g] > 0 or observed.get(g, 0) > 0]
    obs = np.array([float(observed.get(g, 0)) for g in groups])
    total_w = sum(weights[g] for g in groups)
    exp = np.array([obs.sum() * weights[g] / total_w for g in groups])
    if len(groups) < 2 or obs.sum() == 0:
        chi2, p = 0.0, 1.0
    elif np.any((exp == 0) & (obs > 0)):
        chi2, p = math.inf, 0.0
    else:
        res = stats.chisquare(obs, exp)
        chi2, p = float(res.statistic), float(res.pvalue)
    return {
        "test": "chi2_goodness_of_fit",
        "chi2": chi2,
        "df": len(groups) - 1,
        "p_value": p,
        "observed": {g: int(o) for g, o in zip(groups, obs, strict=True)},
        "expected": {g: float(e) for g, e in zip(groups, exp, strict=True)},
        "planned_split": {g: weights[g] / total_w for g in groups},
        "threshold": SRM_ALPHA,
        "mismatch": bool(p < SRM_ALPHA),
    }


def cuped_theta(y: Any, x: Any) -> float:
    """CUPED coefficient theta = cov(Y, X) / var(X) (0 when X is constant or missing)."""
    y, x = np.asarray(y, dtype=float), _impute_mean(np.asarray(x, dtype=float))
    if x.size < 2:
        return 0.0
    vx = x.var(ddof=1)
    if not np.isfinite(vx) or vx <= 0:
        return 0.0
    return float(np.cov(y, x, ddof=1)[0, 1] / vx)


def cuped_adjust(y: Any, x: Any, theta: float | None = None) -> tuple[np.ndarray, float]:
    """CUPED-adjusted outcome Y − theta (X − mean X) and theta (pooled over all rows given).

    Missing covariate values are imputed with the mean of the observed ones (so those units get
    no adjustment); an all-missing covariate gives theta = 0.
    """
    y = np.asarray(y, dtype=float)
    x = _impute_mean(np.asarray(x, dtype=float))
    if theta is None:
        theta = cuped_theta(y, x)
    return y - theta * (x - x.mean()), float(theta)


def _impute_mean(x: np.ndarray) -> np.ndarray:
    nan = np.isnan(x)
    if not nan.any():
        return x
    if nan.all():
        return np.zeros_like(x)
    return np.where(nan, x[~nan].mean(), x)


# ---------------------------------------------------------------------------------------------
# power


def power_two_sample(
    effect: float,
    n_per_group: float,
    sd: float,
    alpha: float = 0.05,
    ratio: float = 1.0,
    method: str = "t",
) -> float:
    """Power of a two-sided two-sample test to detect an absolute ``effect`` (outcome units).

    ``n_per_group`` is the first (control) group's size, the other has ``ratio`` times as many;
    ``sd`` is the common per-unit standard deviation. ``method`` "t" (noncentral t, like
    statsmodels TTestIndPower) or "normal" (like NormalIndPower).
    """
    _check_power_args(alpha, 0.5, sd)
    n1, n2 = float(n_per_group), float(n_per_group) * ratio
    nc = abs(effect / sd) / math.sqrt(1.0 / n1 + 1.0 / n2)  # power is symmetric in the sign
    if method == "normal":
        crit = stats.norm.isf(alpha / 2)
        return float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
    if method == "t":
        df = n1 + n2 - 2
        crit = stats.t.isf(alpha / 2, df)
        # the far tail can underflow to NaN in scipy's nct; it is negligible there
        far = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0))
        return float(stats.nct.sf(crit, df, nc)) + far
    raise ValueError(f"method must be 't' or 'normal', not {method!r}")


def mde(
    n_per_group: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    method: str = "t",
) -> float:
    """Minimum detectable (absolute) effect of a two-sided two-sample test at the given power."""
    _check_power_args(alpha, power, sd)
    if n_per_group * min(1.0, ratio) < 1 or n_per_group * (1 + ratio) <= 2:
        return math.inf

    def gap(e: float) -> float:
        return power_two_sample(e, n_per_group, sd, alpha, ratio, method) - power

    hi = sd
    while gap(hi) < 0:
        hi *= 2
        if hi > 1e12 * sd:
            return math.inf
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-14 * sd, rtol=1e-13))


def sample_size(
    effect: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    method: str = "t",
    exact: bool = False,
) -> float:
    """Learners needed in the first (control) group to detect ``effect`` with ``power``.

    Rounded up to an integer unless ``exact`` (then the real-valued solution, comparable to
    statsmodels ``solve_power``). The other group needs ``ratio`` times as many.
    """
    _check_power_args(alpha, power, sd)
    if effect == 0:
        return math.inf

    def gap(n: float) -> float:
        return power_two_sample(abs(effect), n, sd, alpha, ratio, method) - power

    lo = 2.0 / min(1.0, ratio) if method == "t" else 1.0 / min(1.0, ratio)
    lo = max(lo, 1.0)
    if gap(lo) >= 0:
        n = lo
    else:
        hi = lo * 2
        while gap(hi) < 0:
            hi *= 2
            if hi > 1e12:
                return math.inf
        n = float(optimize.brentq(gap, lo, hi, xtol=1e-10, rtol=1e-13))
    return n if exact else int(math.ceil(n - 1e-9))


def _check_power_args(alpha: float, power: float, sd: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if not sd > 0:
        raise ValueError(f"sd must be > 0, got {sd}")
