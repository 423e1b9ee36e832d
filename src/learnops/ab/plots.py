"""Figures for the A/B report (matplotlib; each function returns the Figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from learnops.ab.stats import mde

#: metric → the axis label of its learner-level value, with its unit
METRIC_UNITS: dict[str, str] = {
    "accuracy": "accuracy (proportion correct)",
    "engagement": "engagement (score 0–1)",
    "success": "success (share of sessions completed)",
}


def metric_label(metric: str) -> str:
    """Axis label of ``metric`` with its unit."""
    return METRIC_UNITS.get(metric, f"{metric} (metric units)")


def _unit(metric: str) -> str:
    label = metric_label(metric)
    return label[label.rfind("(") + 1 : -1] if label.endswith(")") else "metric units"


def plot_group_sizes(results: Mapping[str, Any]) -> Figure:
    """Observed vs expected learners per group, with the SRM verdict in the title (observed
    only, and "not checked", when no planned split was known)."""
    srm = results["srm"]
    groups = list(srm["observed"])
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(10, 4))
    checked = srm.get("checked", True)
    if checked:
        ax.bar(x - 0.2, [srm["observed"][g] for g in groups], 0.4, label="observed")
        ax.bar(x + 0.2, [srm["expected"][g] for g in groups], 0.4, label="expected (planned split)")
        verdict = "MISMATCH" if srm["mismatch"] else "ok"
        title = f"Group sizes — SRM chi2 = {srm['chi2']:.2f}, p = {srm['p_value']:.3g} ({verdict})"
    else:
        ax.bar(x, [srm["observed"][g] for g in groups], 0.5, label="observed")
        title = "Group sizes — SRM not checked (no planned split known)"
    ax.set_xticks(x, groups)
    ax.set_xlabel("experiment arm")
    ax.set_ylabel("learners (count)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_metric_distributions(learners: pd.DataFrame, metrics: Sequence[str]) -> Figure:
    """Per-learner metric means by group (box plots, means as triangles), one panel per
    metric."""
    groups = sorted(learners["group"].unique())
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(10, 4.5 * len(metrics)), 4), squeeze=False
    )
    for ax, m in zip(axes[0], metrics, strict=True):
        data = [learners.loc[learners["group"] == g, m].dropna().to_numpy() for g in groups]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(groups) + 1), groups)
        ax.set_xlabel("experiment arm")
        ax.set_ylabel(metric_label(m))
        ax.set_title(m)
    fig.suptitle("Metric distributions per arm (one value per learner: the learner's mean)")
    fig.tight_layout()
    return fig


def plot_forest(results: Mapping[str, Any]) -> Figure:
    """Effect (treatment − control) with CI for every comparison; significant ones filled."""
    comps = results["comparisons"]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(comps) + 2))
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
    ax.set_ylabel("comparison")
    interval = "CS (anytime-valid)" if results.get("method") == "sequential" else "CI"
    correction = {"holm": "Holm", "bh": "BH"}.get(results.get("correction", "holm"), "Holm")
    ax.set_xlabel(
        "difference treatment − control (in each metric's units; "
        f"{(1 - results['alpha']) * 100:.0f}% {interval})"
    )
    ax.set_title(f"Treatment effects (filled = significant after {correction} correction)")
    fig.tight_layout()
    return fig


def plot_cuped_effect(table: pd.DataFrame) -> Figure:
    """Confidence-interval width of every comparison with and without CUPED (narrower is
    better); ``table`` has ``metric, treatment, ci_width, ci_width_no_cuped``."""
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(table) + 2))
    y = np.arange(len(table))[::-1]
    labels = [f"{m}: {t}" for m, t in zip(table["metric"], table["treatment"], strict=True)]
    ax.barh(y + 0.2, table["ci_width_no_cuped"], 0.4, label="without covariates", color="C7")
    ax.barh(y - 0.2, table["ci_width"], 0.4, label="as analysed (CUPED where used)", color="C0")
    ax.set_yticks(y, labels)
    ax.set_ylabel("comparison (metric: treatment vs control)")
    ax.set_xlabel("confidence-interval width (metric units)")
    ax.set_title("Variance reduction: CI width with and without CUPED covariates")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_cumulative(cumulative: pd.DataFrame, metric: str) -> Figure:
    """Cumulative effect estimate and CI over time, one line per treatment."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (t, d) in enumerate(cumulative.groupby("treatment")):
        dates = pd.to_datetime(d["date"]).dt.tz_localize(None)
        ax.plot(dates, d["diff"], color=f"C{i}", label=t)
        ax.fill_between(dates, d["ci_low"], d["ci_high"], color=f"C{i}", alpha=0.2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("time (UTC): data up to the end of each step")
    ax.set_ylabel(f"{metric} difference vs control ({_unit(metric)})")
    ax.set_title(f"Cumulative effect on {metric} (unadjusted, uncorrected CI)")
    if len(cumulative):
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
    metric: str | None = None,
    mde_current: float | None = None,
) -> Figure:
    """Minimum detectable effect vs learners in the control group (treatment arm ``ratio``
    times as large), marking the current sample size and, when given, its MDE."""
    n_max = max(4 * n_current, 200)
    ns = np.unique(np.geomspace(10, n_max, 60).round())
    mdes = [mde(n, sd, alpha=alpha, power=power, ratio=ratio) for n in ns]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(ns, mdes, label=f"MDE at power {power:.0%}, alpha {alpha}")
    ax.axvline(n_current, color="C1", ls="--", label=f"current n = {int(n_current)}")
    if mde_current is not None and np.isfinite(mde_current):
        ax.plot(n_current, mde_current, "o", color="C1", label=f"current MDE {mde_current:.4f}")
    if threshold:
        ax.axhline(threshold, color="grey", ls=":", label=f"practical threshold {threshold}")
    ax.set_xscale("log")
    ax.set_xlabel("learners in the control group (count, log scale)")
    unit = _unit(metric) if metric else "metric units"
    ax.set_ylabel(f"minimum detectable difference ({unit})")
    ax.set_title(f"Power: detectable effect{f' on {metric}' if metric else ''} by sample size")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_power(inputs: Mapping[str, Any]) -> Figure:
    """The power curve for the stage's power inputs (``ab_analysis.power_inputs``)."""
    return plot_power_curve(
        sd=inputs["sd"],
        n_current=inputs["n_current"],
        alpha=inputs["alpha"],
        power=inputs["power"],
        ratio=inputs.get("ratio", 1.0),
        threshold=inputs.get("threshold"),
        metric=inputs.get("metric"),
        mde_current=inputs.get("mde"),
    )


def plot_confidence_sequence(
    sequence: pd.DataFrame,
    metric: str,
    threshold: float = 0.0,
    alpha: float = 0.05,
) -> Figure:
    """Each treatment's confidence sequence over the looks (band) next to the fixed-horizon CI
    path (dashed), with the practical threshold and the first look whose CS lower bound
    crossed it (and the first look a fixed-horizon peeker would have stopped at). ``sequence``:
    :func:`learnops.ab.sequential.sequence_table`."""
    treatments = sorted(sequence["treatment"].unique()) if len(sequence) else []
    n = max(1, len(treatments))
    fig, axes = plt.subplots(1, n, figsize=(max(10.0, min(15.0, 6.0 * n)), 4.5), squeeze=False)
    level = f"{(1 - alpha) * 100:.0f}%"
    for i, ax in enumerate(axes[0]):
        if i >= len(treatments):
            ax.set_title(f"{metric}: no looks")
            ax.set_xlabel("learners analysed so far (count)")
            ax.set_ylabel(f"{metric} difference vs control ({_unit(metric)})")
            continue
        t = treatments[i]
        d = sequence[sequence["treatment"] == t].sort_values("n_learners")
        x = d["n_learners"].to_numpy(dtype=float)
        ax.fill_between(
            x, d["cs_low"], d["cs_high"], color="C0", alpha=0.25,
            label=f"{level} confidence sequence",
        )  # fmt: skip
        ax.plot(x, d["fixed_low"], color="C1", ls="--", lw=1, label=f"{level} fixed-horizon CI")
        ax.plot(x, d["fixed_high"], color="C1", ls="--", lw=1)
        ax.plot(x, d["diff"], color="C0", marker=".", label="estimate")
        ax.axhline(0, color="k", lw=0.8)
        if threshold:
            ax.axhline(threshold, color="grey", ls=":", label=f"practical threshold {threshold:g}")
        crossed = d[d["cs_low"] > threshold]
        if len(crossed):
            first = crossed.iloc[0]
            ax.axvline(first["n_learners"], color="C2", lw=1.2)
            ax.plot(first["n_learners"], first["cs_low"], "o", color="C2",
                    label=f"CS above threshold: look {int(first['look'])}")  # fmt: skip
        fixed = d[d["fixed_low"] > threshold]
        if len(fixed):
            f0 = fixed.iloc[0]
            ax.plot(f0["n_learners"], f0["fixed_low"], "x", color="C1", ms=8,
                    label=f"fixed CI above threshold: look {int(f0['look'])}")  # fmt: skip
        ax.set_xlabel("learners analysed so far (count, in order of first event)")
        ax.set_ylabel(f"{metric} difference vs control ({_unit(metric)})")
        ax.set_title(f"{t} vs control on {metric}")
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Anytime-valid confidence sequence vs fixed-horizon CI over the looks")
    fig.tight_layout()
    return fig
