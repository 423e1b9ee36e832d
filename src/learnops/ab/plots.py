"""Figures for the A/B report (matplotlib; each function returns the Figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from learnops.ab.stats import mde


def plot_group_sizes(results: Mapping[str, Any]) -> Figure:
    """Observed vs expected learners per group, with the SRM verdict in the title."""
    srm = results["srm"]
    groups = list(srm["observed"])
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, [srm["observed"][g] for g in groups], 0.4, label="observed")
    ax.bar(x + 0.2, [srm["expected"][g] for g in groups], 0.4, label="expected (planned)")
    ax.set_xticks(x, groups)
    ax.set_ylabel("learners")
    verdict = "MISMATCH" if srm["mismatch"] else "ok"
    ax.set_title(f"Group sizes — SRM chi2={srm['chi2']:.2f}, p={srm['p_value']:.3g} ({verdict})")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_metric_distributions(learners: pd.DataFrame, metrics: Sequence[str]) -> Figure:
    """Per-learner metric means by group (box plots), one panel per metric."""
    groups = sorted(learners["group"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        data = [learners.loc[learners["group"] == g, m].dropna().to_numpy() for g in groups]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(groups) + 1), groups)
        ax.set_title(f"{m} (learner means)")
    fig.tight_layout()
    return fig


def plot_forest(results: Mapping[str, Any]) -> Figure:
    """Effect (treatment − control) with CI for every comparison; significant ones filled."""
    comps = results["comparisons"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(comps) + 1.5))
    y = np.arange(len(comps))[::-1]
    for yi, c in zip(y, comps, strict=True):
        if c["diff"] is None or c["ci_low"] is None:
            continue
        face = "C0" if c["significant"] else "white"
        ax.plot([c["ci_low"], c["ci_high"]], [yi, yi], color="C0")
        ax.plot(c["diff"], yi, "o", color="C0", markerfacecolor=face)
    thr = results.get("practical_threshold", 0) or 0
    ax.axvline(0, color="k", lw=0.8)
    if thr:
        ax.axvline(thr, color="grey", ls="--", lw=0.8, label=f"practical threshold {thr}")
        ax.legend(loc="best")
    ax.set_yticks(y, [f"{c['metric']}: {c['treatment']} vs {c['control']}" for c in comps])
    ax.set_xlabel(f"difference ({(1 - results['alpha']) * 100:.0f}% CI; filled = Holm-significant)")
    ax.set_title("Treatment effects")
    fig.tight_layout()
    return fig


def plot_cumulative(cumulative: pd.DataFrame, metric: str) -> Figure:
    """Cumulative effect estimate and CI over time, one line per treatment."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, (t, d) in enumerate(cumulative.groupby("treatment")):
        dates = pd.to_datetime(d["date"]).dt.tz_localize(None)
        ax.plot(dates, d["diff"], color=f"C{i}", label=t)
        ax.fill_between(dates, d["ci_low"], d["ci_high"], color=f"C{i}", alpha=0.2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(f"{metric} difference vs control")
    ax.set_title(f"Cumulative effect on {metric} (data up to each day)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_power_curve(
    sd: float,
    n_current: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    threshold: float | None = None,
) -> Figure:
    """Minimum detectable effect vs learners per group, marking the current sample size."""
    n_max = max(4 * n_current, 200)
    ns = np.unique(np.geomspace(10, n_max, 60).round())
    mdes = [mde(n, sd, alpha=alpha, power=power, ratio=ratio) for n in ns]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ns, mdes, label=f"MDE at power {power:.0%}, alpha {alpha}")
    ax.axvline(n_current, color="C1", ls="--", label=f"current n = {int(n_current)}")
    if threshold:
        ax.axhline(threshold, color="grey", ls=":", label=f"practical threshold {threshold}")
    ax.set_xscale("log")
    ax.set_xlabel("learners in the control group")
    ax.set_ylabel("minimum detectable difference")
    ax.set_title("Power: detectable effect by sample size")
    ax.legend()
    fig.tight_layout()
    return fig
