"""Matplotlib figures for the evaluation report (``notebooks/04_evaluate.ipynb``).

Each function draws one figure from a table of :class:`learnops.stages.evaluate.EvaluateResult`
and returns the matplotlib Figure (titled, axes labelled with their units).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "plot_agreement",
    "plot_binary_calibration",
    "plot_confusion",
    "plot_headline",
    "plot_latency",
    "plot_ope",
    "plot_outcomes",
    "plot_per_class",
    "plot_reliability",
    "plot_slices",
    "plot_threshold_curve",
]


def _err(estimate, low, high) -> np.ndarray:
    """Error-bar lengths (2×n) from CI bounds; clipped at 0 because a percentile interval can
    lie wholly on one side of a biased estimate (ECE) and round-off can cross it by 1e-16."""
    est = np.asarray(estimate, dtype=float)
    lower = np.clip(est - np.asarray(low, dtype=float), 0.0, None)
    upper = np.clip(np.asarray(high, dtype=float) - est, 0.0, None)
    return np.nan_to_num(np.vstack([lower, upper]))


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


#: Axis label (with its unit) of each bootstrapped headline metric.
METRIC_LABELS = {
    "accuracy": "accuracy (share of decisions)",
    "macro_f1": "macro-F1 (0–1)",
    "ece": "ECE (probability)",
    "log_loss": "log-loss (nats per decision)",
}


def plot_headline(bootstrap: pd.DataFrame) -> Any:
    """Point estimate and 95% interval of each bootstrapped metric, one small panel each."""
    plt = _plt()
    n = len(bootstrap)
    fig, axes = plt.subplots(1, n, figsize=(max(10.0, 3.0 * n), 3.4), squeeze=False)
    for ax, row in zip(axes[0], bootstrap.itertuples(), strict=True):
        err = _err([row.estimate], [row.ci_low], [row.ci_high])
        ax.errorbar([0], [row.estimate], yerr=err, fmt="o", capsize=6, color="C0")
        has_ci = np.isfinite(row.ci_low) and np.isfinite(row.ci_high)
        interval = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" if has_ci else "(no CI: bootstrap off)"
        ax.set_title(f"{row.metric}\n{row.estimate:.3f} {interval}")
        ax.set_xticks([])
        ax.set_xlabel("estimate, 95% CI" if has_ci else "estimate")
        ax.set_ylabel(METRIC_LABELS.get(str(row.metric), str(row.metric)))
        ax.margins(y=0.4)
    fig.suptitle("Headline metrics on held-out learners (learner-clustered bootstrap)")
    fig.tight_layout()
    return fig


def plot_confusion(confusion: pd.DataFrame, normalized: pd.DataFrame | None = None) -> Any:
    """Heatmap of the confusion matrix (rows = logged action, columns = model's action); cells
    show counts and, when ``normalized`` is given, the row share that colours them."""
    plt = _plt()
    shade = normalized if normalized is not None else confusion
    fig, ax = plt.subplots(figsize=(10, 6.5))
    im = ax.imshow(shade.to_numpy(dtype=float), cmap="Blues", vmin=0)
    labels = list(confusion.columns)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), list(confusion.index))
    ax.set_xlabel("model's action (count, share of row)")
    ax.set_ylabel("logged action")
    ax.set_title("Confusion matrix on held-out decisions")
    vmax = float(np.nanmax(shade.to_numpy(dtype=float))) or 1.0
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            text = f"{int(confusion.iat[i, j])}"
            if normalized is not None:
                text += f"\n{normalized.iat[i, j]:.0%}"
            colour = "white" if shade.iat[i, j] > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=colour)
    label = "share of the logged action" if normalized is not None else "decisions (count)"
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    return fig


def plot_per_class(per_class: pd.DataFrame) -> Any:
    """Precision, recall and F1 per action (grouped bars; support in the tick labels)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(per_class))
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.26, per_class[metric], width=0.26, label=metric)
    ticks = [
        f"{a}\n(n={int(s)})" for a, s in zip(per_class["action"], per_class["support"], strict=True)
    ]
    ax.set_xticks(x, ticks, fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_xlabel("logged action (support n = held-out decisions)")
    ax.set_ylabel("score (0–1)")
    ax.set_title("Precision, recall and F1 per action")
    ax.legend(ncol=3, loc="lower right")
    fig.tight_layout()
    return fig


def plot_reliability(
    tables: Mapping[tuple[str, str], pd.DataFrame],
    ece_values: Mapping[tuple[str, str], float] | None = None,
    temperature: float | None = None,
) -> Any:
    """Reliability diagrams, one panel per binning (``uniform`` = equal width, ``quantile`` =
    equal mass), each with the before (T = 1) and after (fitted T) curves and the diagonal.

    ``tables`` is keyed by (``before``|``after``, ``uniform``|``quantile``) as in
    ``EvaluateResult.mlp.reliability``; ``ece_values`` (same keys) adds the ECE to the legend.
    """
    plt = _plt()
    strategies = sorted({s for _, s in tables}, key=lambda s: s != "uniform")
    width = max(10.0, 5.2 * len(strategies))
    fig, axes = plt.subplots(1, len(strategies), figsize=(width, 5), squeeze=False)
    titles = {"uniform": "equal-width bins", "quantile": "equal-mass bins"}
    for ax, strategy in zip(axes[0], strategies, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        for when in ("before", "after"):
            t = tables.get((when, strategy))
            if t is None:
                continue
            t = t[t["count"] > 0]
            label = "before (T = 1)" if when == "before" else "after"
            if when == "after" and temperature is not None:
                label = f"after (T = {temperature:.2f})"
            if ece_values and (when, strategy) in ece_values:
                label += f", ECE {ece_values[(when, strategy)]:.3f}"
            ax.plot(t["mean_confidence"], t["accuracy"], marker="o", ms=4, label=label)
        ax.set_title(titles.get(strategy, strategy))
        ax.set_xlabel("mean confidence in bin (probability)")
        ax.set_ylabel("accuracy in bin (share correct)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Reliability of the model's confidence before and after temperature scaling")
    fig.tight_layout()
    return fig


def plot_threshold_curve(
    table: pd.DataFrame,
    targets: Any,
    current: float | None = None,
    chosen: float | None = None,
) -> Any:
    """ML usage and ML accuracy against the confidence threshold, with the usage and accuracy
    targets (horizontal lines), the current threshold and the chosen one (vertical lines)."""
    plt = _plt()
    tgt = targets.model_dump() if hasattr(targets, "model_dump") else dict(targets)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(table["threshold"], table["ml_usage"], label="ML usage (share decided by the model)")
    ax.plot(table["threshold"], table["ml_accuracy"], label="ML accuracy (on those decisions)")
    if "ml_usage" in tgt:
        ax.axhline(
            tgt["ml_usage"], color="C0", ls=":", lw=1, label=f"usage target {tgt['ml_usage']}"
        )
    if "accuracy" in tgt:
        ax.axhline(
            tgt["accuracy"], color="C1", ls=":", lw=1, label=f"accuracy target {tgt['accuracy']}"
        )
    if current is not None:
        ax.axvline(current, color="grey", ls="--", lw=1, label=f"current threshold {current:.2f}")
    if chosen is not None:
        ax.axvline(chosen, color="C2", lw=1.5, label=f"chosen threshold {chosen:.2f}")
    ax.set_xlabel("confidence threshold (probability)")
    ax.set_ylabel("share (of decisions / of ML decisions)")
    ax.set_title("ML usage and ML accuracy against the confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_agreement(table: pd.DataFrame, by: str = "confidence_bucket") -> Any:
    """Agreement of the model with the logged action per ``by`` group, one series per decider
    (``decided_by``), with Wilson 95% intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.2))
    col = table[by]
    present = set(col.astype(str))
    order = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col)
    groups = [str(g) for g in order if str(g) in present]
    x = np.arange(len(groups))
    deciders = list(pd.unique(table["decided_by"]))
    width = 0.8 / max(len(deciders), 1)
    for k, d in enumerate(deciders):
        part = table[table["decided_by"] == d]
        part = part.set_index(part[by].astype(str)).reindex(groups)
        pos = x + (k - (len(deciders) - 1) / 2) * width
        err = _err(part["agreement"], part["ci_low"], part["ci_high"])
        ax.bar(pos, part["agreement"], width=width, label=f"logged by {d}", alpha=0.85)
        ax.errorbar(pos, part["agreement"], yerr=err, fmt="none", ecolor="black", capsize=3)
    ax.set_xticks(x, groups, rotation=20, fontsize=8)
    ax.set_xlabel(by.replace("_", " "))
    ax.set_ylabel("agreement (share of decisions)")
    ax.set_title(f"Model's agreement with the logged action by {by.replace('_', ' ')}")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: Unit of each outcome column.
OUTCOME_UNITS = {
    "next_accuracy": "share correct",
    "next_engagement": "engagement score 0–1",
    "session_completed": "share of sessions",
    "total_session_time_ms": "ms",
}


def plot_outcomes(table: pd.DataFrame, by: str, metrics: list[str] | None = None) -> Any:
    """Mean outcome per ``by`` group with its (learner-clustered) 95% interval, one panel per
    outcome metric; ``table`` is the output of ``outcomes_by``."""
    plt = _plt()
    metrics = metrics or list(pd.unique(table["metric"]))
    width = max(10.0, 3.6 * len(metrics))
    fig, axes = plt.subplots(1, len(metrics), figsize=(width, 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = table[table["metric"] == metric]
        y = np.arange(len(part))
        err = _err(part["mean"], part["ci_low"], part["ci_high"])
        ax.errorbar(part["mean"], y, xerr=err, fmt="o", capsize=4)
        ax.set_yticks(y, [str(v) for v in part[by]], fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel(f"mean ({OUTCOME_UNITS.get(metric, 'value')})")
        ax.set_ylabel(by.replace("_", " "))
        ax.invert_yaxis()
    fig.suptitle(f"Outcomes after the logged decision, by {by.replace('_', ' ')} (95% CI)")
    fig.tight_layout()
    return fig


def plot_ope(table: pd.DataFrame, reward: str = "next_engagement") -> Any:
    """Forest plot of the off-policy estimates (95% intervals) of mean ``reward`` against the
    logged policy's observed mean (the grey band is its interval)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.2))
    logged = table[table["policy"] == "logged"]
    est = table[table["policy"] != "logged"].reset_index(drop=True)
    if not logged.empty:
        row = logged.iloc[0]
        ax.axvspan(row["ci_low"], row["ci_high"], color="grey", alpha=0.2)
        ax.axvline(row["value"], color="grey", lw=1.5, label=f"logged policy {row['value']:.4f}")
    y = np.arange(len(est))
    colours = {p: f"C{i}" for i, p in enumerate(pd.unique(est["policy"]))}
    for i, row in est.iterrows():
        err = _err([row["value"]], [row["ci_low"]], [row["ci_high"]])
        ax.errorbar([row["value"]], [i], xerr=err, fmt="o", capsize=4, color=colours[row["policy"]])
    labels = [
        f"{p} / {e.upper()} (ESS {s:,.0f})"
        for p, e, s in est[["policy", "estimator", "ess"]].to_numpy()
    ]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"estimated mean reward ({reward}, 0–1)")
    ax.set_ylabel("policy / estimator")
    ax.set_title("Off-policy value of the model's policies vs the logged policy (95% CI)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_binary_calibration(table: pd.DataFrame, title: str = "P(correct) calibration") -> Any:
    """Reliability diagram of a binary probability (e.g. IRT P(correct)), marker size ~ count."""
    plt = _plt()
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(11, 4.8), width_ratios=[1, 1.2])
    t = table[table["count"] > 0]
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    sizes = 20 + 200 * t["count"] / max(float(t["count"].max()), 1.0)
    ax.plot(t["mean_confidence"], t["accuracy"], color="C0", lw=1)
    ax.scatter(t["mean_confidence"], t["accuracy"], s=sizes, color="C0", label="bins (size ~ n)")
    ax.set_xlabel("mean predicted P(correct) (probability)")
    ax.set_ylabel("observed share correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("reliability")
    ax.legend(loc="upper left", fontsize=8)
    hx.bar(t["mean_confidence"], t["count"], width=0.8 / max(len(table), 1), color="C0")
    hx.set_xlim(0, 1)
    hx.set_xlabel("mean predicted P(correct) (probability)")
    hx.set_ylabel("responses in bin (count)")
    hx.set_title("how many responses each bin holds")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latency(latency_ms: np.ndarray, target_ms: float | None = None) -> Any:
    """Histogram of single-decision latencies (ms, log scale) with p50/p95/p99 marked."""
    plt = _plt()
    lat = np.asarray(latency_ms, dtype=float)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    bins = np.logspace(np.log10(max(lat.min(), 1e-4)), np.log10(lat.max() * 1.01), 40)
    ax.hist(lat, bins=bins, color="C0", alpha=0.8)
    for q, ls in ((50, "-"), (95, "--"), (99, ":")):
        v = float(np.percentile(lat, q))
        ax.axvline(v, color="black", ls=ls, lw=1, label=f"p{q} {v:.3f} ms")
    if target_ms is not None and target_ms <= lat.max() * 10:
        ax.axvline(target_ms, color="C3", lw=1.5, label=f"target {target_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency per decision (ms, log scale)")
    ax.set_ylabel("calls (count)")
    ax.set_title(f"In-process single-decision latency ({lat.size:,} calls)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_slices(table: pd.DataFrame, metrics: list[str] | None = None) -> Any:
    """Per cohort slice (rows grouped by dimension), the estimate and 95% interval of each
    metric, one panel per metric; ``table`` is ``SliceReport.table``."""
    plt = _plt()
    metrics = metrics or ["accuracy", "macro_f1", "ece", "ml_usage"]
    keys = table.drop_duplicates(["dimension", "slice"])[["dimension", "slice"]]
    labels = [f"{d}: {s}" for d, s in keys.itertuples(index=False)]
    height = max(3.5, 0.32 * len(labels) + 1.2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 1.5, height),
                             squeeze=False, sharey=True)  # fmt: skip
    y = np.arange(len(labels))
    dims = keys["dimension"].to_numpy()
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = keys.merge(table[table["metric"] == metric], on=["dimension", "slice"], how="left")
        for i, dim in enumerate(pd.unique(dims)):
            m = dims == dim
            err = _err(part["estimate"][m], part["ci_low"][m], part["ci_high"][m])
            ax.errorbar(part["estimate"][m], y[m], xerr=err, fmt="o", capsize=3, color=f"C{i}")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel(METRIC_LABELS.get(metric, "share" if metric == "ml_usage" else "mean"))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("Held-out decisions by cohort slice (learner-clustered bootstrap, 95% CI)")
    fig.tight_layout()
    return fig
