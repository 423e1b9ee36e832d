"""Plots for the monitoring notebook (matplotlib; each returns its Figure)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["drift_bars", "feature_distributions", "latency_over_time", "outcomes_over_time",
           "usage_over_time"]  # fmt: skip


def usage_over_time(rolling: pd.DataFrame, target: float | None = None) -> Figure:
    """ML usage rate and decision count per window."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(rolling["window"], rolling["ml_usage"], marker="o", label="ML usage")
    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of decisions by the model")
    ax2 = ax.twinx()
    ax2.bar(rolling["window"], rolling["n"], alpha=0.2, color="gray", width=2)
    ax2.set_ylabel("decisions per window")
    ax.legend(loc="upper left")
    ax.set_title("ML usage over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def latency_over_time(rolling: pd.DataFrame, target_ms: float | None = None) -> Figure:
    """Latency p50/p95/p99 of all decisions and p95 of ML decisions per window (log scale)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
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
    ax.set_ylabel("latency (ms)")
    ax.legend(ncol=3, fontsize=8)
    ax.set_title("Decision latency over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def outcomes_over_time(rolling: pd.DataFrame, target_accuracy: float | None = None) -> Figure:
    """ML accuracy (agreement with the best action) and outcomes after ML vs fallback decisions."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharex=True)
    ax = axes[0]
    ax.plot(rolling["window"], rolling["ml_accuracy"], marker="o", label="ML")
    ax.plot(rolling["window"], rolling["fallback_accuracy"], marker="o", label="fallback")
    if target_accuracy is not None:
        ax.axhline(target_accuracy, color="tab:red", ls="--", lw=1, label="target")
    ax.set_title("Agreement with the best action")
    ax.legend(fontsize=8)
    ax = axes[1]
    for col, label in [
        ("ml_next_accuracy", "next accuracy after ML"),
        ("fallback_next_accuracy", "next accuracy after fallback"),
        ("ml_next_engagement", "next engagement after ML"),
        ("fallback_next_engagement", "next engagement after fallback"),
    ]:
        ax.plot(rolling["window"], rolling[col], marker=".", label=label)
    ax.set_title("Outcomes")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def drift_bars(drift: pd.DataFrame, threshold: float = 0.2) -> Figure:
    """PSI per feature, drifted features highlighted."""
    d = drift.sort_values("psi")
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = np.where(d["psi"] > threshold, "tab:red", "tab:blue")
    ax.barh(d["feature"], d["psi"], color=colors)
    ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel("PSI (recent vs reference)")
    ax.set_title("Feature drift")
    fig.tight_layout()
    return fig


def feature_distributions(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], bins: int = 30
) -> Figure:
    """Reference vs recent histograms (densities) of the given features."""
    n = max(len(features), 1)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, f in zip(axes.flat, features, strict=False):
        both = np.concatenate([reference[f].to_numpy(float), current[f].to_numpy(float)])
        both = both[np.isfinite(both)]
        lo, hi = np.quantile(both, [0.005, 0.995]) if len(both) else (0, 1)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        ax.hist(reference[f], bins=edges, density=True, alpha=0.5, label="reference")
        ax.hist(current[f], bins=edges, density=True, alpha=0.5, label="recent")
        ax.set_title(f)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
