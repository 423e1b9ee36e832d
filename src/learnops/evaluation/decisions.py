"""ML-vs-LLM decision analysis: agreement with logged actions, confidence thresholds, outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from learnops.contracts import OUTCOME_COLUMNS
from learnops.errors import LearnopsError
from learnops.io import require_columns

#: Default confidence-bucket edges for :func:`add_confidence_bucket`.
CONFIDENCE_EDGES: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise LearnopsError("alpha must be in (0, 1)")
    return float(stats.norm.ppf(1 - alpha / 2))


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def add_confidence_bucket(
    df: pd.DataFrame,
    confidence_col: str = "confidence",
    edges: Sequence[float] = CONFIDENCE_EDGES,
    name: str = "confidence_bucket",
) -> pd.DataFrame:
    """A copy of ``df`` with a categorical ``name`` column of right-closed confidence intervals
    (the lowest interval includes its left edge)."""
    require_columns(df, [confidence_col], what="decisions")
    out = df.copy()
    out[name] = pd.cut(out[confidence_col], bins=list(edges), include_lowest=True)
    return out


def agreement_table(
    df: pd.DataFrame,
    model_action_col: str = "model_action",
    logged_action_col: str = "action",
    by: str | Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Share of rows where the model's action equals the logged action, per group of ``by``.

    ``by`` defaults to the logged action; pass ``[]`` for one overall row, or e.g.
    ``"confidence_bucket"`` after :func:`add_confidence_bucket`. Columns: the group keys, ``n``,
    ``agree`` (count), ``agreement`` (share) and a Wilson ``ci_low``/``ci_high``.
    """
    keys = [logged_action_col] if by is None else _as_list(by)
    require_columns(df, [model_action_col, logged_action_col, *keys], what="decisions")
    z = _z(alpha)
    work = df[keys].copy()
    work["_agree"] = (df[model_action_col].astype(str) == df[logged_action_col].astype(str)).astype(
        float
    )
    if keys:
        g = work.groupby(keys, observed=True, dropna=False)["_agree"]
        out = pd.DataFrame({"n": g.size(), "agree": g.sum()}).reset_index()
    else:
        out = pd.DataFrame({"n": [len(work)], "agree": [work["_agree"].sum()]})
    n = out["n"].to_numpy(dtype=float)
    k = out["agree"].to_numpy(dtype=float)
    out["agree"] = k.astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1 + z**2 / n
        centre = (phat + z**2 / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / denom
    out["agreement"] = phat
    out["ci_low"] = centre - half
    out["ci_high"] = centre + half
    return out


def threshold_analysis(
    confidence: npt.ArrayLike,
    correct: npt.ArrayLike,
    thresholds: npt.ArrayLike | None = None,
    fallback_accuracy: float | None = None,
) -> pd.DataFrame:
    """For each threshold t, what a "use the model when confidence ≥ t" rule would give.

    Columns: ``threshold``, ``n_ml`` and ``ml_usage`` (share of rows with confidence ≥ t),
    ``ml_accuracy`` (model accuracy on those rows; NaN if none), ``below_accuracy`` (model accuracy
    on the rows handed to the fallback; NaN if none) and ``overall_accuracy``: the system accuracy
    usage·ml_accuracy + (1 − usage)·``fallback_accuracy`` when a fallback accuracy is given, else
    the model's accuracy on all rows (what it would score deciding everything itself).
    """
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.ndim != 1 or conf.shape != hit.shape:
        raise LearnopsError("confidence and correct must be 1-D arrays of the same length")
    if conf.size == 0:
        raise LearnopsError("no rows to analyse")
    if not (np.all(np.isfinite(conf)) and np.all(np.isfinite(hit))):
        raise LearnopsError("confidence and correct must not contain missing values")
    if not np.all((hit == 0) | (hit == 1)):
        raise LearnopsError("correct must be 0/1")
    t = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, dtype=float)
    order = np.sort(conf)
    hits_sorted = hit[np.argsort(conf, kind="stable")]
    cum_hits = np.concatenate([[0.0], np.cumsum(hits_sorted)])
    n = conf.size
    below = np.searchsorted(order, t, side="left")  # rows with confidence < t
    n_ml = n - below
    hits_ml = cum_hits[-1] - cum_hits[below]
    with np.errstate(invalid="ignore", divide="ignore"):
        ml_acc = np.where(n_ml > 0, hits_ml / np.maximum(n_ml, 1), np.nan)
        below_acc = np.where(below > 0, cum_hits[below] / np.maximum(below, 1), np.nan)
    usage = n_ml / n
    if fallback_accuracy is None:
        overall = np.full(t.shape, cum_hits[-1] / n)
    else:
        overall = usage * np.nan_to_num(ml_acc) + (1 - usage) * float(fallback_accuracy)
    return pd.DataFrame(
        {
            "threshold": t,
            "n_ml": n_ml.astype(int),
            "ml_usage": usage,
            "ml_accuracy": ml_acc,
            "below_accuracy": below_acc,
            "overall_accuracy": overall,
        }
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen confidence threshold (None when no threshold meets the targets) and why."""

    threshold: float | None
    ml_usage: float | None
    ml_accuracy: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def pick_threshold(
    table: pd.DataFrame, min_usage: float = 0.70, min_accuracy: float = 0.85
) -> ThresholdChoice:
    """Among thresholds with ML usage ≥ ``min_usage``, the one with the highest ML accuracy,
    provided it reaches ``min_accuracy`` (ties go to the higher usage, then the lower threshold).

    ``table`` is the output of :func:`threshold_analysis`. When no threshold meets both targets
    the threshold is None and ``reason`` says which target fails and by how much.
    """
    require_columns(table, ["threshold", "ml_usage", "ml_accuracy"], what="threshold table")
    ok_usage = table[(table["ml_usage"] >= min_usage) & table["ml_accuracy"].notna()]
    if ok_usage.empty:
        return ThresholdChoice(
            None,
            None,
            None,
            f"no threshold reaches ML usage ≥ {min_usage:.2f} "
            f"(highest usage with a defined accuracy: {table['ml_usage'].max():.3f})",
        )
    ranked = ok_usage.sort_values(
        ["ml_accuracy", "ml_usage", "threshold"], ascending=[False, False, True], kind="stable"
    )
    best = ranked.iloc[0]
    if best["ml_accuracy"] < min_accuracy:
        return ThresholdChoice(
            None,
            None,
            None,
            f"no threshold meets both targets: at ML usage ≥ {min_usage:.2f} the best ML "
            f"accuracy is {best['ml_accuracy']:.3f} (threshold {best['threshold']:.2f}) "
            f"< {min_accuracy:.2f}",
        )
    return ThresholdChoice(
        float(best["threshold"]),
        float(best["ml_usage"]),
        float(best["ml_accuracy"]),
        f"threshold {best['threshold']:.2f}: ML usage {best['ml_usage']:.3f} ≥ {min_usage:.2f}, "
        f"ML accuracy {best['ml_accuracy']:.3f} ≥ {min_accuracy:.2f}",
    )


def _numeric(s: pd.Series, name: str) -> np.ndarray:
    try:
        return s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise LearnopsError(f"outcome column {name!r} is not numeric: {exc}") from exc


def _mean_se(y: np.ndarray, clusters: np.ndarray | None) -> tuple[float, float, int]:
    n = y.size
    mean = float(y.mean())
    if clusters is None:
        se = float(y.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        return mean, se, n
    codes, uniq = pd.factorize(pd.Series(clusters), use_na_sentinel=False)
    g = len(uniq)
    if g < 2:
        return mean, float("nan"), g
    scores = np.bincount(codes, weights=y - mean)
    var = g / (g - 1) * np.sum(scores**2) / n**2
    return mean, float(np.sqrt(var)), g


def outcomes_by(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("action",),
    metrics: Sequence[str] = OUTCOME_COLUMNS,
    cluster_col: str | None = "learner_hash",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Mean of each outcome metric per group, with a normal-approximation confidence interval.

    Standard errors are learner-clustered when ``cluster_col`` is given (CR1 sandwich for a mean:
    sqrt(G/(G−1) · Σ_g (Σ_{i∈g} (y_i − ȳ))² / n²), the same as statsmodels' OLS-on-a-constant
    with ``cov_type="cluster"``), otherwise the plain SE s/√n. Rows with a missing outcome are
    dropped per metric (outcomes arrive later than decisions); booleans count as 0/1.
    Long format: group keys, ``metric``, ``n``, ``n_clusters``, ``mean``, ``se``, ``ci_low``,
    ``ci_high``.
    """
    keys = _as_list(by)
    cols = [*keys, *metrics] + ([cluster_col] if cluster_col else [])
    require_columns(df, cols, what="decisions")
    z = _z(alpha)
    rows: list[dict[str, Any]] = []
    grouped = df.groupby(keys, observed=True, dropna=False, sort=True) if keys else [((), df)]
    for key, part in grouped:
        key_t = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            vals = _numeric(part[metric], metric)
            mask = np.isfinite(vals)
            y = vals[mask]
            record: dict[str, Any] = dict(zip(keys, key_t, strict=True))
            record["metric"] = metric
            if y.size == 0:
                record.update(n=0, n_clusters=0, mean=np.nan, se=np.nan)
            else:
                cl = part[cluster_col].to_numpy()[mask] if cluster_col else None
                mean, se, g = _mean_se(y, cl)
                record.update(n=int(y.size), n_clusters=int(g), mean=mean, se=se)
            record["ci_low"] = record["mean"] - z * record["se"]
            record["ci_high"] = record["mean"] + z * record["se"]
            rows.append(record)
    return pd.DataFrame(
        rows, columns=[*keys, "metric", "n", "n_clusters", "mean", "se", "ci_low", "ci_high"]
    )
