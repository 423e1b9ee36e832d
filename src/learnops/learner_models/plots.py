"""Matplotlib figures for the ``learner_models`` report: each function takes data, returns a
Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.learner_models.compare import LABELS

__all__ = ["metric_comparison", "paired_forest", "reliability", "truth_over_time"]

_TITLES = {
    "log_loss": ("log-loss (nats per answer, lower is better)", "held-out log-loss"),
    "auc": ("ROC AUC (higher is better)", "held-out AUC"),
    "ece": ("ECE (probability, lower is better)", "held-out ECE"),
}


def _color(i: int) -> str:
    return f"C{i}"


def metric_comparison(metrics: pd.DataFrame, split: str):
    """Log-loss, AUC and ECE per model with their learner-bootstrap 95% intervals
    (``metrics``: :attr:`SplitResult.metrics`)."""
    import matplotlib.pyplot as plt

    models = list(metrics.index.get_level_values(0).unique())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    y = np.arange(len(models))
    for ax, key in zip(axes, ("log_loss", "auc", "ece"), strict=True):
        v = np.array([metrics.loc[(m, key), "value"] for m in models])
        lo = np.array([metrics.loc[(m, key), "low"] for m in models])
        hi = np.array([metrics.loc[(m, key), "high"] for m in models])
        ax.errorbar(v, y, xerr=[v - lo, hi - v], fmt="none", ecolor="0.3", capsize=3)
        ax.scatter(v, y, c=[_color(i) for i in range(len(models))], zorder=3)
        ax.set_yticks(y, [LABELS.get(m, m) for m in models])
        ax.invert_yaxis()
        xlabel, title = _TITLES[key]
        ax.set(xlabel=xlabel, title=f"{title} ({split} split)")
    fig.tight_layout()
    return fig


def reliability(tables: dict[str, pd.DataFrame], split: str):
    """Reliability diagram of P(correct), one line per model (marker area ~ answers in the bin)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    for i, (m, t) in enumerate(tables.items()):
        t = t[t["count"] > 0]
        ax.plot(t["mean_confidence"], t["accuracy"], color=_color(i), lw=1.2)
        size = 300 * t["count"] / max(1.0, float(t["count"].sum()))
        ax.scatter(t["mean_confidence"], t["accuracy"], s=size + 8, color=_color(i),
                   label=LABELS.get(m, m))  # fmt: skip
    ax.set(
        xlabel="mean predicted P(correct) in bin (probability)",
        ylabel="observed share correct (probability)",
        title=f"Reliability of the next-answer predictions ({split} split)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def paired_forest(paired: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("log_loss", "auc")):
    """Paired differences model − static IRT with 95% learner-bootstrap intervals, per split
    (rows) and metric (panels); an interval that misses 0 is a difference the data support."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(7.5 * len(metrics), 4.0))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, metrics, strict=True):
        labels, rows = [], []
        for split, table in paired.items():
            for m in table.index.get_level_values(0).unique():
                if (m, key) in table.index:
                    r = table.loc[(m, key)]
                    rows.append(r)
                    labels.append(
                        f"{LABELS.get(m, m)} ({split}) {r['diff']:+.4f} "
                        f"[{r['low']:+.4f}, {r['high']:+.4f}]"
                    )
        y = np.arange(len(rows))
        d = np.array([r["diff"] for r in rows])
        lo = np.array([r["low"] for r in rows])
        hi = np.array([r["high"] for r in rows])
        ax.axvline(0, color="0.5", ls="--", lw=1)
        ax.locator_params(axis="x", nbins=5)
        ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="o", color="C0", capsize=3)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        better = "left" if key in ("log_loss", "ece", "rmse") else "right"
        ax.set(
            xlabel=f"{key.replace('_', '-')} difference, model − static IRT ({better} is better)",
            title=f"Paired difference with static IRT: {key.replace('_', '-')}",
        )
    fig.tight_layout()
    return fig


def truth_over_time(truth: pd.DataFrame):
    """Correlation and RMSE of each model's ability estimate with the true current ability, by
    number of earlier answers (``truth``: :func:`.compare.truth_comparison`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    if truth.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no simulator truth (real data)", ha="center", va="center")
            ax.set_axis_off()
        return fig
    t = truth[truth["practice"] != "all"]
    for i, (m, g) in enumerate(t.groupby("model", sort=False)):
        x = np.arange(len(g))
        axes[0].plot(x, g["corr"], marker="o", color=_color(i), label=LABELS.get(m, m))
        axes[1].plot(x, g["rmse"], marker="o", color=_color(i), label=LABELS.get(m, m))
        for ax in axes:
            ax.set_xticks(x, g["practice"].astype(str))
    axes[0].set(
        xlabel="earlier answers of the learner (count)",
        ylabel="Pearson r with the true ability",
        title="Estimate vs true current ability: correlation",
    )
    axes[1].set(
        xlabel="earlier answers of the learner (count)",
        ylabel="RMSE (logits, after linear rescaling)",
        title="Estimate vs true current ability: RMSE",
    )
    axes[0].legend()
    fig.tight_layout()
    return fig
