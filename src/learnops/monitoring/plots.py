"""Plots for the monitoring report (matplotlib; each takes data and returns its Figure)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["FEATURE_UNITS", "drift_bars", "feature_distributions", "latency_over_time",
           "outcomes_over_time", "usage_over_time"]  # fmt: skip

#: Axis label (with unit) of each decision feature.
FEATURE_UNITS: dict[str, str] = {
    "recent_accuracy": "recent accuracy (share of last 5 correct)",
    "accuracy_trend": "accuracy trend (change in share correct)",
    "avg_response_time_s": "mean response time (s)",
    "response_time_trend": "response time trend (s)",
    "consecutive_errors": "consecutive errors (count)",
    "consecutive_correct": "consecutive correct (count)",
    "hint_rate": "hint rate (share of last 10)",
    "current_difficulty": "current difficulty (logits)",
    "session_minutes": "session length so far (min)",
    "minutes_since_break": "time since break (min)",
    "items_in_session": "items in session (count)",
    "engagement": "engagement (score 0–1)",
    "hour_of_day": "hour of day (h, UTC)",
    "ability": "ability estimate θ (logits)",
    "ability_se": "ability standard error (logits)",
    "learning_velocity": "learning velocity (logits per answer)",
    "sessions_completed": "sessions completed (count)",
    "days_since_last_session": "days since last session (days)",
}

_WINDOW_LABEL = "window start (UTC)"


def _feature_label(feature: str) -> str:
    return FEATURE_UNITS.get(feature, f"{feature} (feature units)")


def _bar_width(windows: pd.Series) -> float:
    """Bar width (days) of the rolling windows: 80% of the smallest gap between them."""
    w = pd.to_datetime(pd.Series(windows)).sort_values()
    gaps = w.diff().dropna().dt.total_seconds() / 86400.0
    return 0.8 * float(gaps.min()) if len(gaps) else 1.0


def usage_over_time(rolling: pd.DataFrame, target: float | None = None) -> Figure:
    """ML usage rate and decision count per window."""
    fig, ax = plt.subplots(figsize=(12, 4))
    ax2 = ax.twinx()
    ax2.bar(rolling["window"], rolling["n"], alpha=0.2, color="gray",
            width=_bar_width(rolling["window"]), label="decisions per window")  # fmt: skip
    ax2.set_ylabel("decisions per window (count)")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(rolling["window"], rolling["ml_usage"], marker="o", label="ML usage")
    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_ylim(0, 1)
    ax.set_xlabel(_WINDOW_LABEL)
    ax.set_ylabel("share of decisions by the model")
    handles = ax.get_legend_handles_labels()
    extra = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left")
    ax.set_title("ML usage over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def latency_over_time(rolling: pd.DataFrame, target_ms: float | None = None) -> Figure:
    """Latency p50/p95/p99 of all decisions and p95 of ML decisions per window (log scale)."""
    fig, ax = plt.subplots(figsize=(12, 4))
    for col, label in [
        ("latency_p50_ms", "all p50"),
        ("latency_p95_ms", "all p95"),
        ("latency_p99_ms", "all p99"),
        ("ml_latency_p95_ms", "ML p95"),
    ]:
        ax.plot(rolling["window"], rolling[col], marker=".", label=label)
    if target_ms is not None:
        ax.axhline(target_ms, color="tab:red", ls="--", lw=1, label=f"target {target_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel(_WINDOW_LABEL)
    ax.set_ylabel("latency (ms, log scale)")
    ax.legend(ncol=3, fontsize=8)
    ax.set_title("Decision latency over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def outcomes_over_time(rolling: pd.DataFrame, target_accuracy: float | None = None) -> Figure:
    """ML accuracy (agreement with the best action) and outcomes after ML vs fallback decisions."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharex=True)
    ax = axes[0]
    ax.plot(rolling["window"], rolling["ml_accuracy"], marker="o", label="ML")
    ax.plot(rolling["window"], rolling["fallback_accuracy"], marker="o", label="fallback")
    if target_accuracy is not None:
        ax.axhline(target_accuracy, color="tab:red", ls="--", lw=1,
                   label=f"target {target_accuracy:.0%}")  # fmt: skip
    ax.set_title("Agreement with the best action")
    ax.set_xlabel(_WINDOW_LABEL)
    ax.set_ylabel("share of decisions agreeing")
    ax.legend(fontsize=8)
    ax = axes[1]
    for col, label in [
        ("ml_next_accuracy", "next accuracy after ML"),
        ("fallback_next_accuracy", "next accuracy after fallback"),
        ("ml_next_engagement", "next engagement after ML"),
        ("fallback_next_engagement", "next engagement after fallback"),
    ]:
        ax.plot(rolling["window"], rolling[col], marker=".", label=label)
    ax.set_title("Outcomes after the decisions")
    ax.set_xlabel(_WINDOW_LABEL)
    ax.set_ylabel("mean outcome (proportion / score 0–1)")
    ax.legend(fontsize=7)
    fig.suptitle("Decision quality and outcomes over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def drift_bars(drift: pd.DataFrame, alpha: float = 0.05) -> Figure:
    """Evidence of drift per feature: −log10 of the multiplicity-adjusted permutation p-value
    (bars; drifted features red) next to PSI (the effect size). Features without a test
    (insufficient data) are drawn as empty bars and named in the title."""
    d = drift.assign(
        _p=pd.to_numeric(drift.get("p_adjusted"), errors="coerce"),
        _psi=pd.to_numeric(drift["psi"], errors="coerce"),
    )
    d = d.assign(_evidence=-np.log10(d["_p"].clip(lower=1e-300))).sort_values(
        ["_evidence", "_psi"], na_position="first"
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), sharey=True)
    ax = axes[0]
    colors = np.where(d["drifted"].astype(bool), "tab:red", "tab:blue")
    ax.barh(d["feature"], d["_evidence"].fillna(0.0), color=colors)
    ax.axvline(
        -np.log10(alpha), color="k", ls="--", lw=1, label=f"alarm level (adjusted p = {alpha:g})"
    )
    ax.set_xlabel("−log10 adjusted p-value (permutation KS)")
    ax.set_ylabel("feature")
    ax.legend(loc="lower right", fontsize=8)
    untested = int(d["_p"].isna().sum())
    ax.set_title(
        "Evidence of drift" + (f" ({untested} untested: too few rows)" if untested else "")
    )
    ax = axes[1]
    ax.barh(d["feature"], d["_psi"].fillna(0.0), color=colors, alpha=0.7)
    ax.set_xlabel("PSI, recent vs reference (unitless effect size)")
    ax.set_ylabel("feature")
    ax.set_title("Size of the shift (PSI)")
    fig.suptitle("Feature drift (red: drifted by the test)")
    fig.tight_layout()
    return fig


def feature_distributions(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], bins: int = 30
) -> Figure:
    """Reference vs recent histograms (densities) of the given features."""
    n = max(len(features), 1)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(10, 4.5 * cols), 3.4 * rows), squeeze=False)
    for ax, f in zip(axes.flat, features, strict=False):
        both = np.concatenate([reference[f].to_numpy(float), current[f].to_numpy(float)])
        both = both[np.isfinite(both)]
        lo, hi = np.quantile(both, [0.005, 0.995]) if len(both) else (0, 1)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        ax.hist(reference[f], bins=edges, density=True, alpha=0.5, label="reference")
        ax.hist(current[f], bins=edges, density=True, alpha=0.5, label="recent")
        ax.set_title(f)
        ax.set_xlabel(_feature_label(f))
        ax.set_ylabel("density (per unit)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Most drifted features: reference vs recent traffic")
    fig.tight_layout()
    return fig
