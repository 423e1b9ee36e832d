"""Monitoring of the served decisions: rolling metrics (ML usage, latency, agreement with the
best-action proxy, outcomes) by time window and model version, feature drift (PSI, KS) against
the training data, and threshold alerts stored as MonitoringMetric rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from learnops.config import Params, Targets
from learnops.contracts import ACTIONS, FEATURES

__all__ = [
    "Alert",
    "DRIFT_PSI",
    "KS_ALPHA",
    "best_action_proxy",
    "check_alerts",
    "drift_report",
    "ks_test",
    "metrics_by_version",
    "monitoring_report",
    "psi",
    "record_alerts",
    "rolling_metrics",
    "summary_metrics",
    "time_split",
]

_TARGETS = Targets()
#: Population-stability index above which a feature counts as drifted.
DRIFT_PSI = 0.2
#: Significance level of the two-sample KS test (reported next to PSI; PSI decides the alert).
KS_ALPHA = 0.01
_EPS = 1e-4


# -- best-action proxy ---------------------------------------------------------------------------
def best_action_proxy(df: pd.DataFrame) -> pd.Series:
    """The best action for each decision's situation: the rule teacher's most probable action
    (in the simulator, the action whose outcome is best)."""
    from learnops.data.simulate import teacher_probabilities
    from learnops.mlp.features import feature_matrix

    if len(df) == 0:
        return pd.Series([], index=df.index, dtype=object)
    p = teacher_probabilities(feature_matrix(df))
    return pd.Series(np.asarray(ACTIONS, dtype=object)[p.argmax(axis=1)], index=df.index)


def _prepare(df: pd.DataFrame, best: Callable[[pd.DataFrame], pd.Series] | None) -> pd.DataFrame:
    out = df.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    out["is_ml"] = (out["decided_by"] == "ml").astype(float)
    proxy = (best or best_action_proxy)(out)
    out["agrees"] = (out["action"] == proxy).astype(float)
    return out


def _q(values: pd.Series, q: float) -> float:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(np.quantile(v, q)) if len(v) else float("nan")


def _mean(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").astype(float).dropna()
    return float(v.mean()) if len(v) else float("nan")


def _group_metrics(g: pd.DataFrame) -> dict[str, float]:
    ml = g[g["decided_by"] == "ml"]
    other = g[g["decided_by"] != "ml"]
    return {
        "n": int(len(g)),
        "n_ml": int(len(ml)),
        "ml_usage": _mean(g["is_ml"]),
        "latency_p50_ms": _q(g["latency_ms"], 0.5),
        "latency_p95_ms": _q(g["latency_ms"], 0.95),
        "latency_p99_ms": _q(g["latency_ms"], 0.99),
        "ml_latency_p95_ms": _q(ml["latency_ms"], 0.95),
        "ml_accuracy": _mean(ml["agrees"]),
        "fallback_accuracy": _mean(other["agrees"]),
        "ml_confidence": _mean(ml["confidence"]),
        "ml_next_accuracy": _mean(ml["next_accuracy"]),
        "ml_next_engagement": _mean(ml["next_engagement"]),
        "ml_session_completed": _mean(ml["session_completed"]),
        "fallback_next_accuracy": _mean(other["next_accuracy"]),
        "fallback_next_engagement": _mean(other["next_engagement"]),
        "outcome_rate": _mean(g["next_engagement"].notna().astype(float)),
    }


def summary_metrics(
    decisions: pd.DataFrame, best: Callable[[pd.DataFrame], pd.Series] | None = None
) -> dict[str, float]:
    """Monitoring metrics over all given decisions.

    ``ml_accuracy`` is the share of ML decisions that agree with the best-action proxy
    (``best``, default :func:`best_action_proxy`); ``ml_latency_p95_ms`` covers ML decisions
    only (the fallback teacher is an LLM call with its own latency budget).
    """
    return _group_metrics(_prepare(decisions, best))


def rolling_metrics(
    decisions: pd.DataFrame,
    window: str = "1D",
    by_version: bool = False,
    best: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> pd.DataFrame:
    """The metrics of :func:`summary_metrics` per time window (a pandas offset such as ``1h``,
    ``1D``, ``7D``), optionally per ML model version; one row per non-empty window."""
    df = _prepare(decisions, best)
    df["window"] = df["timestamp"].dt.floor(window) if window else df["timestamp"].min()
    keys = ["window"]
    if by_version:
        df["version"] = df["model_version"].where(df["decided_by"] == "ml", "fallback")
        keys.append("version")
    rows = [
        {**dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True)), **_group_metrics(g)}
        for k, g in df.groupby(keys, sort=True, dropna=False)
    ]
    return pd.DataFrame(rows)


def metrics_by_version(
    decisions: pd.DataFrame, best: Callable[[pd.DataFrame], pd.Series] | None = None
) -> pd.DataFrame:
    """The metrics of ML decisions per model version (fallback decisions in one row)."""
    df = _prepare(decisions, best)
    df["version"] = df["model_version"].where(df["decided_by"] == "ml", "fallback")
    rows = [{"version": v, **_group_metrics(g)} for v, g in df.groupby("version", sort=True)]
    return pd.DataFrame(rows)


# -- drift ---------------------------------------------------------------------------------------
def psi(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """Population-stability index of ``current`` against ``reference``.

    Bins are the reference's quantiles (ties merged; the outer bins are open), empty bins get a
    share of 1e-4: PSI = Σ (c − r) · ln(c / r).
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
    """Two-sample Kolmogorov–Smirnov statistic and p-value."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] = FEATURES,
    bins: int = 10,
    psi_threshold: float = DRIFT_PSI,
    ks_alpha: float = KS_ALPHA,
) -> pd.DataFrame:
    """Per feature: PSI, KS statistic and p-value, means, and ``drifted`` (PSI > threshold).

    With thousands of rows KS flags tiny shifts, so the alert follows PSI; ``ks_significant``
    is reported alongside.
    """
    rows = []
    for f in features:
        ref, cur = reference[f].to_numpy(dtype=float), current[f].to_numpy(dtype=float)
        stat, p = ks_test(ref, cur)
        value = psi(ref, cur, bins)
        rows.append(
            {
                "feature": f,
                "psi": value,
                "ks_stat": stat,
                "ks_pvalue": p,
                "ks_significant": bool(p < ks_alpha),
                "reference_mean": float(np.nanmean(ref)) if len(ref) else float("nan"),
                "current_mean": float(np.nanmean(cur)) if len(cur) else float("nan"),
                "drifted": bool(value > psi_threshold),
            }
        )
    return pd.DataFrame(rows)


def time_split(
    decisions: pd.DataFrame, reference_frac: float = 0.7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(first ``reference_frac`` of the rows by time, the rest): a stand-in for (training data,
    recent traffic) when only one decisions table is at hand."""
    if not 0 < reference_frac < 1:
        raise ValueError("reference_frac must be within (0, 1)")
    df = decisions.sort_values("timestamp", kind="mergesort").reset_index(drop=True)
    cut = int(round(len(df) * reference_frac))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


# -- alerts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    """A metric beyond its threshold."""

    metric: str
    value: float
    threshold: float
    message: str
    model_version: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_alerts(
    decisions: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    accuracy_min: float = _TARGETS.accuracy,
    latency_ms_max: float = _TARGETS.latency_ms,
    ml_usage_min: float = _TARGETS.ml_usage,
    psi_max: float = DRIFT_PSI,
    min_decisions: int = 30,
    best: Callable[[pd.DataFrame], pd.Series] | None = None,
    params: Params | None = None,
) -> list[Alert]:
    """Alerts for low ML accuracy (agreement with the best-action proxy), high ML latency (p95),
    low ML usage and feature drift (PSI of ``decisions`` against ``reference``).

    ``params`` replaces the accuracy, latency and usage defaults by ``params.evaluate.targets``.
    Rate metrics need at least ``min_decisions`` decisions (ML decisions for the ML metrics).
    """
    if params is not None:
        t = params.evaluate.targets
        accuracy_min, latency_ms_max, ml_usage_min = t.accuracy, t.latency_ms, t.ml_usage
    alerts: list[Alert] = []
    if len(decisions) == 0:
        return alerts
    m = summary_metrics(decisions, best)
    versions = decisions.loc[decisions["decided_by"] == "ml", "model_version"].dropna()
    version = str(versions.iloc[-1]) if len(versions) else None
    if m["n"] >= min_decisions and m["ml_usage"] < ml_usage_min:
        alerts.append(
            Alert(
                "ml_usage",
                m["ml_usage"],
                ml_usage_min,
                f"ML usage {m['ml_usage']:.1%} is below the target {ml_usage_min:.0%}",
                version,
            )
        )
    if m["n_ml"] >= min_decisions:
        if m["ml_accuracy"] < accuracy_min:
            alerts.append(
                Alert(
                    "ml_accuracy",
                    m["ml_accuracy"],
                    accuracy_min,
                    f"ML accuracy (agreement with the best action) {m['ml_accuracy']:.1%} "
                    f"is below the target {accuracy_min:.0%}",
                    version,
                )
            )
        if m["ml_latency_p95_ms"] > latency_ms_max:
            alerts.append(
                Alert(
                    "ml_latency_p95_ms",
                    m["ml_latency_p95_ms"],
                    latency_ms_max,
                    f"ML decision latency p95 {m['ml_latency_p95_ms']:.1f} ms exceeds "
                    f"{latency_ms_max:g} ms",
                    version,
                )
            )
    if reference is not None and len(reference) and len(decisions) >= min_decisions:
        drift = drift_report(reference, decisions, psi_threshold=psi_max)
        for row in drift[drift["drifted"]].itertuples(index=False):
            alerts.append(
                Alert(
                    "feature_drift_psi",
                    float(row.psi),
                    psi_max,
                    f"feature {row.feature} drifted: PSI {row.psi:.3f} > {psi_max:g} "
                    f"(KS {row.ks_stat:.3f}, p={row.ks_pvalue:.2g})",
                    version,
                    {"feature": row.feature},
                )
            )
    return alerts


def record_alerts(store: Any, alerts: Sequence[Alert], timestamp: datetime | None = None) -> int:
    """Store each alert as a MonitoringMetric row (alert=True, message); returns the count."""
    for a in alerts:
        store.record_metric(
            a.metric,
            a.value,
            model_version=a.model_version,
            labels={**a.labels, "threshold": a.threshold},
            alert=True,
            message=a.message,
            timestamp=timestamp,
        )
    return len(alerts)


def monitoring_report(
    decisions: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    params: Params | None = None,
    window: str = "7D",
    psi_max: float = DRIFT_PSI,
) -> dict[str, Any]:
    """A JSON-ready summary: overall metrics, metrics by version and by window, drift, alerts."""
    targets = params.evaluate.targets if params is not None else _TARGETS
    out: dict[str, Any] = {
        "n_decisions": int(len(decisions)),
        "window": window,
        "targets": {
            "accuracy": targets.accuracy,
            "latency_ms": targets.latency_ms,
            "ml_usage": targets.ml_usage,
            "drift_psi": psi_max,
        },
    }
    if len(decisions):
        out["period"] = {
            "start": pd.Timestamp(decisions["timestamp"].min()).isoformat(),
            "end": pd.Timestamp(decisions["timestamp"].max()).isoformat(),
        }
    out["summary"] = _finite(summary_metrics(decisions)) if len(decisions) else {}
    out["by_version"] = _records(metrics_by_version(decisions)) if len(decisions) else []
    out["rolling"] = _records(rolling_metrics(decisions, window)) if len(decisions) else []
    if reference is not None:
        drift = drift_report(reference, decisions, psi_threshold=psi_max)
        out["drift"] = _records(drift)
    alerts = check_alerts(
        decisions,
        reference,
        accuracy_min=targets.accuracy,
        latency_ms_max=targets.latency_ms,
        ml_usage_min=targets.ml_usage,
        psi_max=psi_max,
    )
    out["alerts"] = [a.as_dict() for a in alerts]
    return out


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    from learnops.io import jsonable

    return jsonable(d)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    from learnops.io import jsonable

    return jsonable(df.to_dict("records"))
