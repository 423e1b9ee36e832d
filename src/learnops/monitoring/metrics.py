"""Monitoring of the served decisions: rolling metrics (ML usage, latency, agreement with the
best-action proxy, outcomes) by time window and model version, feature drift against the training
data (the rule of :mod:`learnops.monitoring.drift`: permutation KS per feature, whole learners
permuted, Holm over the features, "insufficient data" below ``min_n``; PSI only as an effect size),
and threshold alerts stored as MonitoringMetric rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from learnops.config import MonitorConfig, Params, Targets
from learnops.contracts import ACTIONS, FEATURES
from learnops.monitoring.drift import DriftResult, drift_test, ks_test, psi

__all__ = [
    "Alert",
    "DRIFT_PSI",
    "best_action_proxy",
    "check_alerts",
    "drift_report",
    "drift_result",
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
#: The conventional "large shift" PSI level, drawn for reference only: PSI is reported as an
#: effect size and decides nothing (a fixed PSI threshold fires on identical data in small windows).
DRIFT_PSI = 0.2


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
def _monitor(params: Params | MonitorConfig | None) -> MonitorConfig:
    if params is None:
        return MonitorConfig()
    return params if isinstance(params, MonitorConfig) else params.monitor


def drift_result(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: Params | MonitorConfig | None = None,
    features: Sequence[str] = FEATURES,
) -> DriftResult:
    """The drift test of ``current`` against ``reference`` with ``params.monitor``'s settings
    (see :func:`learnops.monitoring.drift.drift_test`)."""
    m = _monitor(params)
    return drift_test(
        reference,
        current,
        features,
        alpha=m.alpha,
        min_n=m.min_n,
        permutations=m.permutations,
        correction=m.correction,
        cluster=m.cluster,
        seed=m.seed,
    )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] = FEATURES,
    params: Params | MonitorConfig | None = None,
    result: DriftResult | None = None,
) -> pd.DataFrame:
    """Per feature: PSI (effect size), KS statistic, permutation p-value and its adjusted value,
    means, and ``drifted`` (adjusted p ≤ alpha; never below ``min_n`` rows)."""
    res = result if result is not None else drift_result(reference, current, params, features)
    return res.features.rename(columns={"statistic": "ks_stat", "p_value": "ks_pvalue"})


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
    min_decisions: int = 30,
    best: Callable[[pd.DataFrame], pd.Series] | None = None,
    params: Params | None = None,
    monitor: MonitorConfig | None = None,
    drift: DriftResult | None = None,
) -> list[Alert]:
    """Alerts for low ML accuracy (agreement with the best-action proxy), high ML latency (p95),
    low ML usage and feature drift of ``decisions`` against ``reference``.

    ``params`` replaces the accuracy, latency and usage defaults by ``params.evaluate.targets``
    and the drift settings by ``params.monitor`` (``monitor`` wins over both). Rate metrics need
    at least ``min_decisions`` decisions (ML decisions for the ML metrics). Drift alerts follow
    the drift test (:func:`drift_result`, or ``drift`` when already computed): one
    ``feature_drift`` alert per feature whose adjusted p-value is ≤ alpha; with fewer than
    ``min_n`` rows there is no drift alert (insufficient data), and PSI alone never alerts.
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
    if drift is None and reference is not None and len(reference):
        drift = drift_result(reference, decisions, monitor or params)
    if drift is not None and drift.dataset_drift:
        for row in drift.features[drift.features["drifted"]].itertuples(index=False):
            alerts.append(
                Alert(
                    "feature_drift",
                    float(row.p_adjusted),
                    drift.alpha,
                    f"feature {row.feature} drifted: KS {row.statistic:.3f}, "
                    f"p={row.p_value:.2g} ({drift.correction}-adjusted {row.p_adjusted:.2g} "
                    f"<= {drift.alpha:g}); PSI {row.psi:.3f}, mean {row.reference_mean:.4g} "
                    f"-> {row.current_mean:.4g}",
                    version,
                    {"feature": row.feature, "psi": float(row.psi), "ks": float(row.statistic)},
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
    drift: DriftResult | None = None,
) -> dict[str, Any]:
    """A JSON-ready summary: overall metrics, metrics by version and by window, the drift test
    (the document of ``learnops monitor drift --json``), alerts."""
    targets = params.evaluate.targets if params is not None else _TARGETS
    m = _monitor(params)
    out: dict[str, Any] = {
        "n_decisions": int(len(decisions)),
        "window": window,
        "targets": {
            "accuracy": targets.accuracy,
            "latency_ms": targets.latency_ms,
            "ml_usage": targets.ml_usage,
            "drift_alpha": m.alpha,
            "drift_min_n": m.min_n,
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
    if drift is None and reference is not None:
        drift = drift_result(reference, decisions, params)
    if drift is not None:
        out["drift"] = drift.as_dict()
    alerts = check_alerts(
        decisions,
        reference,
        accuracy_min=targets.accuracy,
        latency_ms_max=targets.latency_ms,
        ml_usage_min=targets.ml_usage,
        monitor=m,
        drift=drift,
    )
    out["alerts"] = [a.as_dict() for a in alerts]
    return out


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    from learnops.io import jsonable

    return jsonable(d)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    from learnops.io import jsonable

    return jsonable(df.to_dict("records"))
