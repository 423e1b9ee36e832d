"""Figures for the register report (matplotlib; each function returns the Figure)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: held-out metrics drawn when present (accuracy, AUC, macro-F1: higher is better; ECE, Brier,
#: log-loss, NLL: lower is better)
METRICS: tuple[str, ...] = ("accuracy", "auc", "macro_f1", "ece", "brier", "log_loss", "nll")
Y_LABEL = "held-out value (unitless)"


def _width(panels: int) -> float:
    return min(15.0, max(10.0, 6.5 * panels))


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_candidate_vs_production(
    comparison: pd.DataFrame, metrics: Sequence[str] = METRICS
) -> Figure:
    """Held-out metrics of each candidate next to production's on the same held-out set, one
    panel per model type."""
    models = list(dict.fromkeys(comparison["model"])) if len(comparison) else []
    fig, axes = plt.subplots(
        1, max(1, len(models)), figsize=(_width(len(models)), 4), squeeze=False
    )
    if not models:
        _empty(axes[0][0], "no candidate was evaluated")
        axes[0][0].set(xlabel="held-out metric", ylabel=Y_LABEL, title="Candidate vs production")
        return fig
    for ax, model in zip(axes[0], models, strict=True):
        g = comparison[comparison["model"] == model].set_index("who")
        cols = [m for m in metrics if m in g.columns and g[m].notna().any()]
        x = np.arange(len(cols))
        whos = list(g.index)
        width = 0.8 / max(1, len(whos))
        for i, who in enumerate(whos):
            version = g.loc[who, "version"] if "version" in g.columns else None
            label = f"{who} {version}" if isinstance(version, str) else who
            ax.bar(x + (i - (len(whos) - 1) / 2) * width, g.loc[who, cols], width, label=label)
        ax.set_xticks(x, cols)
        ax.set_xlabel("held-out metric")
        ax.set_ylabel(Y_LABEL)
        ax.set_title(f"{model}: candidate vs production, same held-out set")
        ax.legend()
    fig.tight_layout()
    return fig


def plot_version_metrics(version_metrics: pd.DataFrame, metrics: Sequence[str] = METRICS) -> Figure:
    """Held-out metrics of every registered version, one panel per model type; the deployed
    (production) version is circled."""
    vm = version_metrics[version_metrics["metric"].isin(metrics)]
    models = list(dict.fromkeys(vm["model_type"])) if len(vm) else []
    fig, axes = plt.subplots(
        1, max(1, len(models)), figsize=(_width(len(models)), 4.6), squeeze=False
    )
    if not models:
        _empty(axes[0][0], "no version registered yet")
        axes[0][0].set(
            xlabel="registered version", ylabel=Y_LABEL, title="Held-out metrics per version"
        )
        return fig
    for ax, model in zip(axes[0], models, strict=True):
        d = vm[vm["model_type"] == model].sort_values("number")
        order = list(dict.fromkeys(d["version"]))
        pos = {v: i for i, v in enumerate(order)}
        for i, metric in enumerate(m for m in metrics if m in set(d["metric"])):
            s = d[d["metric"] == metric]
            ax.plot([pos[v] for v in s["version"]], s["value"], "o-", color=f"C{i}", label=metric)
            dep = s[s["status"] == "deployed"]
            ax.scatter(
                [pos[v] for v in dep["version"]],
                dep["value"],
                s=160,
                facecolors="none",
                edgecolors="k",
            )
        ax.set_xticks(range(len(order)), order)
        ax.set_xlim(-0.5, max(len(order) - 0.5, 0.5))
        ax.set_xlabel("registered version")
        ax.set_ylabel(Y_LABEL)
        ax.set_title(f"{model}: held-out metrics per version (circled: production)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize="small")
    fig.tight_layout()
    return fig
