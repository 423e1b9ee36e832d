"""Ratio metrics by the delta method (Deng, Knoblich & Lu 2018, "Applying the delta method in
metric analytics").

A ratio metric is a ratio of sums over the learners of an arm, e.g. accuracy = Σ correct /
Σ attempted or minutes per session = Σ minutes / Σ sessions. The learner — the randomization unit
— contributes a numerator ``a_i`` and a denominator ``b_i`` (sums over its rows), so rows of the
same learner are never treated as independent. With R = Σa / Σb and b̄ the mean denominator, the
learner's linearized contribution (influence function) is ``l_i = (a_i − R b_i) / b̄`` and

    Var(R) ≈ Var(l) / n = (Var(a) − 2 R Cov(a, b) + R² Var(b)) / (n b̄²).

CUPED for ratio metrics regresses ``l`` on a learner-level pre-period covariate x with one
pooled θ = Cov(l, x) / Var(x): R_adj = R − θ (x̄_arm − x̄_all), Var(R_adj) = Var(l − θ x) / n.
The relative lift R_t / R_c − 1 has delta-method variance
Var(R_t) / R_c² + R_t² Var(R_c) / R_c⁴.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def ratio_estimate(a: Any, b: Any) -> dict[str, float]:
    """Ratio of sums of one arm with its delta-method variance: ``ratio``, ``var`` (of the
    ratio), ``n``, ``mean_den`` and the linearized values ``influence`` (numpy array)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = a.size
    if n == 0 or b.sum() == 0:
        return {"ratio": math.nan, "var": math.nan, "n": n, "mean_den": math.nan,
                "influence": np.full(n, np.nan)}  # fmt: skip
    r = float(a.sum() / b.sum())
    mb = float(b.mean())
    infl = (a - r * b) / mb
    var = float(infl.var(ddof=1) / n) if n > 1 else math.nan
    return {"ratio": r, "var": var, "n": n, "mean_den": mb, "influence": infl}


def delta_var_formula(a: Any, b: Any) -> float:
    """Var(R) by the textbook delta formula (Var(a) − 2R Cov(a,b) + R² Var(b)) / (n b̄²); equal
    to :func:`ratio_estimate`'s variance (a cross-check)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = a.size
    r = a.sum() / b.sum()
    c = np.cov(a, b, ddof=1)
    return float((c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / (n * b.mean() ** 2))


def relative_lift(mean_t: float, var_t: float, mean_c: float, var_c: float) -> tuple[float, float]:
    """(lift, se) of mean_t / mean_c − 1 by the delta method; ``var_*`` are the variances of
    the two (independent) estimates."""
    if not mean_c or not all(map(math.isfinite, (mean_t, var_t, mean_c, var_c))):
        return math.nan, math.nan
    lift = mean_t / mean_c - 1.0
    var = var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4
    return lift, math.sqrt(max(var, 0.0))


def ratio_compare(
    a_t: Any, b_t: Any, a_c: Any, b_c: Any, x_t: Any = None, x_c: Any = None
) -> dict[str, Any]:
    """Treatment vs control on a ratio metric (optionally CUPED with learner covariates x,
    already imputed): ratios (adjusted), their variances, the diff and its se, θ and the raw
    (unadjusted) ratios."""
    et, ec = ratio_estimate(a_t, b_t), ratio_estimate(a_c, b_c)
    out = {
        "raw_t": et["ratio"], "raw_c": ec["ratio"], "n_t": et["n"], "n_c": ec["n"],
        "theta": None, "var_raw_t": et["var"], "var_raw_c": ec["var"],
    }  # fmt: skip
    mt, mc, vt, vc = et["ratio"], ec["ratio"], et["var"], ec["var"]
    if x_t is not None and x_c is not None:
        x_t, x_c = np.asarray(x_t, dtype=float), np.asarray(x_c, dtype=float)
        li = np.r_[et["influence"], ec["influence"]]
        x = np.r_[x_t, x_c]
        vx = x.var(ddof=1) if x.size > 1 else 0.0
        theta = float(np.cov(li, x, ddof=1)[0, 1] / vx) if vx > 0 and np.isfinite(vx) else 0.0
        xbar = x.mean()
        mt = mt - theta * (x_t.mean() - xbar)
        mc = mc - theta * (x_c.mean() - xbar)
        nt, nc = x_t.size, x_c.size
        vt = float((et["influence"] - theta * x_t).var(ddof=1) / nt) if nt > 1 else math.nan
        vc = float((ec["influence"] - theta * x_c).var(ddof=1) / nc) if nc > 1 else math.nan
        out["theta"] = theta
    out.update(
        {
            "mean_t": mt,
            "mean_c": mc,
            "var_t": vt,
            "var_c": vc,
            "diff": mt - mc,
            "se": math.sqrt(vt + vc) if math.isfinite(vt + vc) else math.nan,
        }  # fmt: skip
    )
    return out
