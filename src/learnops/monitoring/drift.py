"""Feature drift with a false-alarm rate that holds at every sample size.

The rule (one rule for ``learnops monitor drift``, :func:`learnops.monitoring.check_alerts`, the
monitoring report and the server's ``/metrics`` gauges):

* per feature, two statistics: the two-sample Kolmogorov–Smirnov statistic D (largest gap
  between the reference's and the current table's empirical CDFs: any change of shape) and the
  absolute difference in means (location shifts, where KS is weak), combined by **min-p** and
  referred to one **permutation test**: the reference and current rows are pooled and the
  "current" label is reassigned at random ``permutations`` times (B); each labelling's two
  statistics become tail probabilities, their minimum is the combined statistic, and the p-value
  is the share of the B + 1 labellings (the observed one included) whose minimum is as small.
  The permutation distribution is exact at any sample size and handles ties, so the
  integer-valued features (consecutive_errors, items_in_session, hour_of_day, …) get exact
  p-values where the asymptotic KS p-value is conservative. The smallest p-value is 1/(B+1), so
  B must be at least (number of features)/alpha − 1 for the correction to be passable;
* **whole learners are permuted, not rows**, when both tables carry the ``cluster`` column
  (``learner_hash``): a learner's decisions are correlated (same ability, same habits), so a row
  permutation treats 15 decisions of one learner as 15 independent draws and raises false alarms
  whenever the current window holds few learners. Permuting learners is exact under the null
  "the current learners are drawn from the same population as the reference learners", whatever
  the correlation inside a learner. A learner present in both tables counts as two units (its
  reference rows and its current rows), which is approximately right;
* the dataset-level verdict controls multiplicity over the features: Holm (family-wise error
  ``alpha``) by default, or Benjamini–Hochberg (false discovery rate ``alpha``);
* fewer than ``min_n`` rows in either table: ``status = "insufficient_data"``, no p-values, never
  an alarm.

PSI is reported per feature as an effect size (how large the shift is); it no longer decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import FEATURES
from learnops.errors import LearnopsError

__all__ = [
    "METHOD",
    "DriftResult",
    "adjust_pvalues",
    "drift_from_params",
    "drift_gauges",
    "drift_test",
    "ks_test",
    "permutation_ks",
    "psi",
]

#: The ``method`` of every :class:`DriftResult`.
METHOD = "permutation-ks+mean"
_EPS = 1e-4
#: Cells (permutations × rows) per block of the permutation loop (bounds memory).
_BLOCK = 2_000_000


# -- effect size and the classic KS ---------------------------------------------------------------
def psi(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """Population-stability index of ``current`` against ``reference``.

    Bins are the reference's quantiles (ties merged; the outer bins are open), empty bins get a
    share of 1e-4: PSI = Σ (c − r) · ln(c / r). An effect size, not a test: its sampling noise
    grows as the samples shrink, so a fixed threshold fires on identical distributions.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    r = np.maximum(r / r.sum(), _EPS)
    c = np.maximum(c / c.sum(), _EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_test(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and scipy's p-value (rows assumed independent,
    continuous values; conservative with ties)."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue)


# -- the permutation KS test --------------------------------------------------------------------
def _ks_mean_rows(
    is_cur: np.ndarray, sorted_values: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(KS statistic, |difference in means|) of each row of ``is_cur`` (bool, permutations ×
    values in sorted order); ``ends`` are the positions where a run of tied values ends."""
    c = np.cumsum(is_cur, axis=1, dtype=np.int64)[:, ends]
    n = is_cur.shape[1]
    n_cur = c[:, -1].astype(float)
    n_ref = n - n_cur
    f_cur = c / np.maximum(n_cur, 1.0)[:, None]
    f_ref = (ends[None, :] + 1 - c) / np.maximum(n_ref, 1.0)[:, None]
    both = (n_cur > 0) & (n_ref > 0)
    d = np.where(both, np.abs(f_cur - f_ref).max(axis=1), 0.0)
    cur_sum = is_cur.astype(float) @ sorted_values
    total = float(sorted_values.sum())
    diff = cur_sum / np.maximum(n_cur, 1.0) - (total - cur_sum) / np.maximum(n_ref, 1.0)
    return d, np.where(both, np.abs(diff), 0.0)


def _tail_p(stats: np.ndarray) -> np.ndarray:
    """p_j = #{i: stats_i ≥ stats_j} / len(stats) for every j (ties within 1e-12 count)."""
    ordered = np.sort(stats)
    return (len(stats) - np.searchsorted(ordered, stats - 1e-12, side="left")) / len(stats)


def permutation_ks(
    values: np.ndarray,
    is_current: np.ndarray,
    units: np.ndarray,
    unit_labels: np.ndarray,
) -> tuple[float, float]:
    """(KS statistic, permutation p-value) of one feature: the min-p combination of the KS
    statistic (any change of shape) and the absolute difference in means (location shifts,
    where KS is weak), both referred to the same permutations of the units.

    ``values`` (finite) and ``is_current`` are the pooled rows; ``units`` the unit index of each
    row; ``unit_labels`` (permutations × units, bool) the permuted "current" labels of the units.
    The observed labelling counts as one of the B + 1, so p ≥ 1/(B+1) and the test is exact.
    """
    order = np.argsort(values, kind="stable")
    sv = values[order]
    ends = np.flatnonzero(np.r_[sv[1:] != sv[:-1], True])
    d_obs, m_obs = _ks_mean_rows(is_current[order][None, :], sv, ends)
    u = units[order]
    block = max(1, _BLOCK // max(len(values), 1))
    ds, ms = [d_obs], [m_obs]
    for start in range(0, unit_labels.shape[0], block):
        d, m = _ks_mean_rows(unit_labels[start : start + block][:, u], sv, ends)
        ds.append(d)
        ms.append(m)
    d_all, m_all = np.concatenate(ds), np.concatenate(ms)
    q = np.minimum(_tail_p(d_all), _tail_p(m_all))
    p = float(np.mean(q <= q[0] + 1e-12))
    return float(d_all[0]), p


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> np.ndarray:
    """Holm (family-wise) or Benjamini–Hochberg (false discovery rate) adjusted p-values."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ps = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    elif method == "bh":
        adj = np.minimum.accumulate((ps * m / np.arange(1, m + 1))[::-1])[::-1]
        adj = np.minimum(adj, 1.0)
    else:
        raise LearnopsError(f"unknown correction {method!r} (use holm or bh)")
    out = np.empty(m)
    out[order] = adj
    return out


# -- the result ---------------------------------------------------------------------------------
#: Columns of :attr:`DriftResult.features`.
FEATURE_COLUMNS = (
    "feature", "statistic", "p_value", "p_adjusted", "drifted", "psi",
    "reference_mean", "current_mean", "n_reference", "n_current",
)  # fmt: skip


@dataclass
class DriftResult:
    """The drift verdict and one row per feature (:data:`FEATURE_COLUMNS`)."""

    status: str
    """``ok``, ``drift`` or ``insufficient_data``."""
    dataset_drift: bool
    method: str
    alpha: float
    correction: str
    unit: str
    """The permuted unit: the cluster column's name, or ``row``."""
    n_reference: int
    n_current: int
    n_reference_units: int
    n_current_units: int
    min_n: int
    permutations: int
    features: pd.DataFrame

    @property
    def drifted_features(self) -> list[str]:
        return self.features.loc[self.features["drifted"], "feature"].tolist()

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``learnops monitor drift --json``."""
        from learnops.io import jsonable

        return jsonable(
            {
                "dataset_drift": self.dataset_drift,
                "status": self.status,
                "method": self.method,
                "statistic": "KS D (largest gap between the two empirical CDFs)",
                "alpha": self.alpha,
                "correction": self.correction,
                "unit": self.unit,
                "permutations": self.permutations,
                "min_n": self.min_n,
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "n_reference_units": self.n_reference_units,
                "n_current_units": self.n_current_units,
                "drifted_features": self.drifted_features,
                "features": self.features.to_dict("records"),
            }
        )

    def gauges(self) -> list[tuple[str, float | None, bool]]:
        """(feature, p-value or None, drifted) per feature."""
        return [
            (str(r.feature), None if pd.isna(r.p_value) else float(r.p_value), bool(r.drifted))
            for r in self.features.itertuples(index=False)
        ]

    def text(self) -> str:
        """A readable verdict and per-feature table."""
        head = {
            "ok": "no drift",
            "drift": f"DRIFT in {len(self.drifted_features)} feature(s)",
            "insufficient_data": f"insufficient data (need at least {self.min_n} rows per table)",
        }[self.status]
        unit = "rows" if self.unit == "row" else f"whole {self.unit} units"
        lines = [
            f"drift: {head}",
            f"test: per feature, KS and mean difference (min-p), p-values from "
            f"{self.permutations} permutations of {unit}; {self.correction} correction at "
            f"alpha {self.alpha:g}",
            f"reference: {self.n_reference} rows ({self.n_reference_units} units); "
            f"current: {self.n_current} rows ({self.n_current_units} units)",
            "",
            f"{'feature':26} {'KS D':>7} {'p-value':>8} {'p adj':>8} {'PSI':>7} "
            f"{'ref mean':>10} {'cur mean':>10}  drifted",
        ]

        def num(x: Any, spec: str) -> str:
            return "-" if x is None or pd.isna(x) else format(float(x), spec)

        for r in self.features.itertuples(index=False):
            lines.append(
                f"{r.feature:26} {num(r.statistic, '7.4f')} {num(r.p_value, '8.4f')} "
                f"{num(r.p_adjusted, '8.4f')} {num(r.psi, '7.3f')} "
                f"{num(r.reference_mean, '10.4g')} {num(r.current_mean, '10.4g')}  "
                f"{'YES' if r.drifted else 'no'}"
            )
        return "\n".join(lines)


_DECIDED = {"p_adjusted", "drifted"}


# -- the test -----------------------------------------------------------------------------------
def _numeric(df: pd.DataFrame, features: Sequence[str], what: str) -> np.ndarray:
    from learnops.io import require_columns

    require_columns(df, features, what=what)
    try:
        return df[list(features)].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise LearnopsError(f"{what}: feature columns must be numeric ({exc})") from None


def _units(
    reference: pd.DataFrame, current: pd.DataFrame, cluster: str | None
) -> tuple[np.ndarray, int, int, str]:
    """(unit index of each pooled row, reference units, current units, unit name)."""
    n_ref, n_cur = len(reference), len(current)
    if cluster and cluster in reference.columns and cluster in current.columns:
        codes = []
        counts = []
        for df, tag in ((reference, "r"), (current, "c")):
            keys = df[cluster].astype(object)
            missing = keys.isna().to_numpy()
            keys = keys.astype(str).to_numpy(dtype=object)
            keys[missing] = [f"\0{tag}{i}" for i in np.flatnonzero(missing)]
            c, uniq = pd.factorize(pd.Series(keys))
            codes.append(c)
            counts.append(len(uniq))
        units = np.r_[codes[0], codes[1] + counts[0]]
        return units, counts[0], counts[1], cluster
    return np.arange(n_ref + n_cur), n_ref, n_cur, "row"


def drift_test(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] = FEATURES,
    *,
    alpha: float = 0.05,
    min_n: int = 50,
    permutations: int = 999,
    correction: str = "holm",
    cluster: str | None = "learner_hash",
    seed: int = 0,
    bins: int = 10,
) -> DriftResult:
    """Does ``current`` differ from ``reference`` in any of ``features``? (see the module doc).

    Raises LearnopsError when a feature column is missing or not numeric. Deterministic given
    ``seed``. Rows with a missing value are left out of that feature's test only.
    """
    if not 0 < alpha < 1:
        raise LearnopsError("alpha must be in (0, 1)")
    if permutations < 1:
        raise LearnopsError("permutations must be at least 1")
    if correction not in {"holm", "bh"}:
        raise LearnopsError(f"unknown correction {correction!r} (use holm or bh)")
    features = list(features)
    needed = int(np.ceil(len(features) / alpha)) - 1
    if permutations < needed:
        # the smallest permutation p-value, 1/(B+1), could never pass the correction
        raise LearnopsError(
            f"{permutations} permutations cannot flag any of {len(features)} features at alpha "
            f"{alpha:g}: use at least {needed}"
        )
    ref_x = _numeric(reference, features, "reference")
    cur_x = _numeric(current, features, "current")
    n_ref, n_cur = len(ref_x), len(cur_x)
    units, u_ref, u_cur, unit = _units(reference, current, cluster)
    enough = n_ref >= min_n and n_cur >= min_n and u_ref >= 2 and u_cur >= 1
    pooled = np.vstack([ref_x, cur_x]) if features else np.empty((n_ref + n_cur, 0))
    is_cur = np.r_[np.zeros(n_ref, bool), np.ones(n_cur, bool)]
    labels = None
    if enough:
        rng = np.random.default_rng(seed)
        base = np.r_[np.zeros(u_ref, bool), np.ones(u_cur, bool)]
        labels = rng.permuted(np.tile(base, (permutations, 1)), axis=1)
    rows = []
    for j, f in enumerate(features):
        col = pooled[:, j]
        ok = np.isfinite(col)
        r, c = col[:n_ref][ok[:n_ref]], col[n_ref:][ok[n_ref:]]
        stat, p = float("nan"), float("nan")
        if len(r) and len(c):
            if labels is not None and len(r) >= min_n and len(c) >= min_n:
                stat, p = permutation_ks(col[ok], is_cur[ok], units[ok], labels)
            else:
                stat = ks_test(r, c)[0]
        rows.append(
            {
                "feature": f,
                "statistic": stat,
                "p_value": p,
                "psi": psi(r, c, bins),
                "reference_mean": float(r.mean()) if len(r) else float("nan"),
                "current_mean": float(c.mean()) if len(c) else float("nan"),
                "n_reference": int(len(r)),
                "n_current": int(len(c)),
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in FEATURE_COLUMNS if c not in _DECIDED])
    tested = table["p_value"].notna().to_numpy()
    adj = np.full(len(table), np.nan)
    adj[tested] = adjust_pvalues(table.loc[tested, "p_value"].to_numpy(), correction)
    table.insert(3, "p_adjusted", adj)
    table.insert(4, "drifted", tested & (np.nan_to_num(adj, nan=1.0) <= alpha))
    table["drifted"] = table["drifted"].astype(bool)
    dataset = bool(table["drifted"].any())
    status = "insufficient_data" if not enough else ("drift" if dataset else "ok")
    return DriftResult(
        status=status,
        dataset_drift=dataset,
        method=METHOD,
        alpha=float(alpha),
        correction=correction,
        unit=unit,
        n_reference=n_ref,
        n_current=n_cur,
        n_reference_units=u_ref,
        n_current_units=u_cur,
        min_n=int(min_n),
        permutations=int(permutations),
        features=table,
    )


def _settings(params: Any) -> dict[str, Any]:
    if params is None:
        from learnops.config import MonitorConfig

        m = MonitorConfig()
    else:
        m = getattr(params, "monitor", params)
    return {
        "alpha": m.alpha,
        "min_n": m.min_n,
        "permutations": m.permutations,
        "correction": m.correction,
        "cluster": m.cluster,
        "seed": m.seed,
    }


def drift_from_params(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: Any = None,
    features: Sequence[str] = FEATURES,
) -> DriftResult:
    """:func:`drift_test` with the settings of ``params.monitor`` (a :class:`Params`, a
    :class:`MonitorConfig`, or None for the defaults)."""
    return drift_test(reference, current, features, **_settings(params))


def drift_gauges(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: Any = None,
    features: Sequence[str] = FEATURES,
) -> list[tuple[str, float | None, bool]]:
    """For the server's ``/metrics``: ``(feature, p_value, drifted)`` per feature, by the same
    rule as the CLI and the alerts (settings from ``params.monitor``). ``p_value`` is None when
    there is too little data (fewer than ``min_n`` rows), and ``drifted`` is then False."""
    return drift_from_params(reference, current, params, features).gauges()
