"""Cohort slices of an evaluation: the model's quality and the outcomes per kind of learner.

A *dimension* partitions the held-out decisions into *slices* (every row in exactly one slice of
each dimension): ability bands (terciles of θ), new vs returning learners, module, hour-of-day
bands. Per slice: accuracy, macro-F1, ECE, ML usage (confidence ≥ the threshold) and the mean
outcomes, each with a learner-clustered bootstrap interval.

One bootstrap serves every slice: each replicate draws the test set's learners with replacement
(as :func:`learnops.evaluation.bootstrap.cluster_bootstrap_ci` does), a row weighs as many times
as its learner was drawn, and every slice's metrics are computed from the same weights. So the
difference between two slices has its own interval from the same replicates, even when a learner
contributes rows to both (its ability or hour moves between decisions). The largest gap of each
metric within a dimension is *flagged* when that interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError
from learnops.evaluation.bootstrap import percentile_interval

__all__ = [
    "HOUR_BANDS",
    "QUALITY_METRICS",
    "SliceReport",
    "ability_bands",
    "decision_modules",
    "hour_bands",
    "returning",
    "slice_report",
    "weighted_metrics",
]

#: Metrics of the model's quality per slice (outcome means are added per outcome column).
QUALITY_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "ece", "ml_usage")
#: Hour-of-day bands: (label, first hour, last hour).
HOUR_BANDS: tuple[tuple[str, int, int], ...] = (
    ("00-11", 0, 11),
    ("12-17", 12, 17),
    ("18-23", 18, 23),
)


def ability_bands(ability: pd.Series) -> pd.Series:
    """``low``/``middle``/``high``: terciles of ability θ among the given rows (ties kept in
    the lower band)."""
    a = pd.to_numeric(ability, errors="coerce").astype(float)
    if a.isna().any():
        raise LearnopsError("ability has missing values")
    q1, q2 = np.quantile(a.to_numpy(), [1 / 3, 2 / 3])
    band = np.where(a <= q1, "low", np.where(a <= q2, "middle", "high"))
    cats = pd.Categorical(band, categories=["low", "middle", "high"], ordered=True)
    return pd.Series(cats, index=ability.index, name="ability_band")


def decision_modules(test: pd.DataFrame, responses: pd.DataFrame | None) -> pd.Series:
    """The module each decision was taken in: the module of its learner's latest response at or
    before the decision's timestamp (``unknown`` without one, or without responses)."""
    out = pd.Series("unknown", index=test.index, name="module", dtype=object)
    need = {"learner_hash", "timestamp", "module"}
    if responses is None or responses.empty or not need <= set(responses.columns):
        return out
    if "timestamp" not in test.columns:
        return out
    left = pd.DataFrame(
        {
            "learner_hash": test["learner_hash"].astype(str).to_numpy(),
            "timestamp": pd.to_datetime(test["timestamp"], utc=True).to_numpy(),
            "_row": np.arange(len(test)),
        }
    ).sort_values(["timestamp", "_row"], kind="stable")
    right = pd.DataFrame(
        {
            "learner_hash": responses["learner_hash"].astype(str).to_numpy(),
            "timestamp": pd.to_datetime(responses["timestamp"], utc=True).to_numpy(),
            "module": responses["module"].astype(str).to_numpy(),
        }
    ).sort_values("timestamp", kind="stable")
    merged = pd.merge_asof(left, right, on="timestamp", by="learner_hash", direction="backward")
    merged = merged.sort_values("_row")
    out[:] = merged["module"].fillna("unknown").to_numpy(dtype=object)
    return out


def returning(sessions_completed: pd.Series) -> pd.Series:
    """``new`` (no session completed before this one) or ``returning``."""
    s = pd.to_numeric(sessions_completed, errors="coerce")
    if s.isna().any():
        raise LearnopsError("sessions_completed has missing values")
    return pd.Series(np.where(s <= 0, "new", "returning"), index=s.index, name="learner")


def hour_bands(hour_of_day: pd.Series) -> pd.Series:
    """The :data:`HOUR_BANDS` label of each hour (0–23, fractions floored)."""
    h = np.floor(pd.to_numeric(hour_of_day, errors="coerce").to_numpy(dtype=float))
    if np.isnan(h).any() or (h < 0).any() or (h > 23).any():
        raise LearnopsError("hour_of_day must be in 0..23")
    out = np.empty(len(h), dtype=object)
    for label, lo, hi in HOUR_BANDS:
        out[(h >= lo) & (h <= hi)] = label
    return pd.Series(out, index=hour_of_day.index, name="hour")


def weighted_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    w: np.ndarray,
    threshold: float,
    outcomes: Mapping[str, np.ndarray],
    n_bins: int = 15,
) -> dict[str, float]:
    """Accuracy, macro-F1 (every class, 0 for a class never true nor predicted), top-label ECE
    with ``n_bins`` equal-width bins, ML usage (share with confidence ≥ ``threshold``) and the
    mean of each outcome (NaN rows skipped), with row weights ``w`` (integer weights = rows
    repeated)."""
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    total = w.sum()
    nan = float("nan")
    if total <= 0:
        return dict.fromkeys([*QUALITY_METRICS, *outcomes], nan)
    hit = (pred == y).astype(float)
    cm = np.bincount(y * k + pred, weights=w, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    bconf = np.bincount(bins, weights=w * conf, minlength=n_bins)
    bacc = np.bincount(bins, weights=w * hit, minlength=n_bins)
    out = {
        "accuracy": float((w * hit).sum() / total),
        "macro_f1": float(f1.mean()),
        "ece": float(np.abs(bacc - bconf).sum() / total),
        "ml_usage": float(w[conf >= threshold].sum() / total),
    }
    for name, v in outcomes.items():
        ok = np.isfinite(v)
        ww = w[ok].sum()
        out[name] = float((w[ok] * v[ok]).sum() / ww) if ww > 0 else nan
    return out


@dataclass
class SliceReport:
    """Per-slice metrics with intervals, and the largest gap per dimension and metric."""

    table: pd.DataFrame
    """One row per (dimension, slice, metric): n, n_learners, estimate, ci_low, ci_high."""
    gaps: pd.DataFrame
    """One row per (dimension, metric): the slices with the highest and lowest estimate, their
    difference (high − low) with its interval, and ``flagged`` (the interval excludes 0)."""
    n_boot: int
    seed: int

    def wide(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per (dimension, slice), one text column per metric: ``est [lo, hi]``."""
        t = self.table if metrics is None else self.table[self.table["metric"].isin(metrics)]

        def cell(r: pd.Series) -> str:
            if not np.isfinite(r["ci_low"]):
                return f"{r['estimate']:.3f}"
            return f"{r['estimate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

        t = t.assign(cell=t.apply(cell, axis=1))
        out = t.pivot_table(
            index=["dimension", "slice"],
            columns="metric",
            values="cell",
            aggfunc="first",
            sort=False,
        )
        counts = t.drop_duplicates(["dimension", "slice"]).set_index(["dimension", "slice"])
        out.insert(0, "learners", counts["n_learners"])
        out.insert(0, "decisions", counts["n"])
        out.columns.name = None
        return out[["decisions", "learners", *pd.unique(t["metric"])]]

    def to_metrics(self) -> dict[str, Any]:
        """The DVC metrics document: ``{dimension: {slice: {n, n_learners, metric: {estimate,
        ci_low, ci_high}}}, "gaps": {dimension: {metric: {...}}}, "bootstrap": {...}}``."""
        doc: dict[str, Any] = {}
        for (dim, sl), part in self.table.groupby(["dimension", "slice"], sort=False):
            entry = doc.setdefault(dim, {}).setdefault(
                sl, {"n": int(part["n"].iloc[0]), "n_learners": int(part["n_learners"].iloc[0])}
            )
            for r in part.itertuples():
                entry[r.metric] = {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high}
        gaps: dict[str, Any] = {}
        for r in self.gaps.to_dict("records"):
            gaps.setdefault(r["dimension"], {})[r["metric"]] = {
                k: r[k] for k in ("high", "low", "gap", "ci_low", "ci_high", "flagged")
            }
        doc["gaps"] = gaps
        doc["bootstrap"] = {"n_boot": self.n_boot, "seed": self.seed, "cluster": "learner_hash"}
        return doc


def slice_report(
    y: np.ndarray,
    proba: np.ndarray,
    learners: Sequence[Any],
    dimensions: Mapping[str, pd.Series | np.ndarray],
    threshold: float,
    outcomes: Mapping[str, np.ndarray] | None = None,
    n_boot: int = 500,
    seed: int = 0,
    n_bins: int = 15,
    alpha: float = 0.05,
    min_learners: int = 5,
) -> SliceReport:
    """Per-slice metrics (:func:`weighted_metrics`) of every dimension, with learner-clustered
    percentile bootstrap intervals from one shared set of ``n_boot`` draws (``n_boot`` 0: no
    intervals), and the largest gap of each metric per dimension. Slices with fewer than
    ``min_learners`` learners are reported but left out of the gaps."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n = len(y)
    if n == 0 or proba.shape[0] != n:
        raise LearnopsError("slices need one probability row per label, and at least one row")
    outs = {k: np.asarray(v, dtype=float) for k, v in (outcomes or {}).items()}
    codes, uniq = pd.factorize(pd.Series(np.asarray(learners)), use_na_sentinel=False)
    weights = [np.ones(n)]
    if n_boot >= 1:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(uniq), size=(int(n_boot), len(uniq)))
        weights += [np.bincount(d, minlength=len(uniq))[codes].astype(float) for d in draws]
    rows: list[dict[str, Any]] = []
    reps: dict[tuple[str, str, str], np.ndarray] = {}
    for dim, labels in dimensions.items():
        lab = np.asarray(labels, dtype=object)
        if len(lab) != n:
            raise LearnopsError(f"slice dimension {dim!r} has {len(lab)} labels for {n} rows")
        cats = getattr(getattr(labels, "cat", None), "categories", None)
        present = set(pd.unique(lab))
        order = [c for c in cats if c in present] if cats is not None else sorted(present, key=str)
        for sl in order:
            m = lab == sl
            vals = [
                weighted_metrics(
                    y[m], proba[m], w[m], threshold, {k: v[m] for k, v in outs.items()}, n_bins
                )
                for w in weights
            ]
            for metric in vals[0]:
                est = vals[0][metric]
                boot = np.array([v[metric] for v in vals[1:]])
                reps[(dim, str(sl), metric)] = boot
                lo, hi = percentile_interval(boot, alpha)
                rows.append(
                    {
                        "dimension": dim,
                        "slice": str(sl),
                        "metric": metric,
                        "n": int(m.sum()),
                        "n_learners": int(len(np.unique(codes[m]))),
                        "estimate": est,
                        "ci_low": lo,
                        "ci_high": hi,
                    }
                )
    table = pd.DataFrame(rows)
    return SliceReport(
        table=table, gaps=_gaps(table, reps, alpha, min_learners), n_boot=int(n_boot), seed=seed
    )


def _gaps(
    table: pd.DataFrame,
    reps: Mapping[tuple[str, str, str], np.ndarray],
    alpha: float,
    min_learners: int,
) -> pd.DataFrame:
    rows = []
    usable = table[(table["n_learners"] >= min_learners) & np.isfinite(table["estimate"])]
    for (dim, metric), part in usable.groupby(["dimension", "metric"], sort=False):
        if len(part) < 2:
            continue
        hi_r = part.loc[part["estimate"].idxmax()]
        lo_r = part.loc[part["estimate"].idxmin()]
        diff = reps[(dim, hi_r["slice"], metric)] - reps[(dim, lo_r["slice"], metric)]
        lo, hi = percentile_interval(diff, alpha)
        rows.append(
            {
                "dimension": dim,
                "metric": metric,
                "high": hi_r["slice"],
                "low": lo_r["slice"],
                "gap": float(hi_r["estimate"] - lo_r["estimate"]),
                "ci_low": lo,
                "ci_high": hi,
                "flagged": bool(np.isfinite(lo) and (lo > 0 or hi < 0)),
            }
        )
    cols = ["dimension", "metric", "high", "low", "gap", "ci_low", "ci_high", "flagged"]
    return pd.DataFrame(rows, columns=cols)
