"""Matplotlib figures for the ``train_mlp`` report: each function takes data, returns a Figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "plot_baselines",
    "plot_learning_curves",
    "plot_per_class",
    "plot_rare_actions",
    "plot_reliability",
]


def plot_learning_curves(history: pd.DataFrame, best_epoch: int | None = None) -> Any:
    """Loss and accuracy per epoch, training vs validation; a dotted line at the kept epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = {
        "loss": ("Cross-entropy loss", "loss (nats per decision)"),
        "accuracy": ("Accuracy", "accuracy (share of decisions correct)"),
    }
    for ax, what in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history["epoch"], history[f"train_{what}"], marker=".", label="training")
        ax.plot(history["epoch"], history[f"val_{what}"], marker=".", label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", label=f"kept epoch ({best_epoch})")
        title, ylabel = labels[what]
        ax.set(title=f"{title} per epoch", xlabel="epoch (passes over the training rows)",
               ylabel=ylabel)  # fmt: skip
        ax.legend()
    fig.suptitle("Learning curves of the decision model")
    fig.tight_layout()
    return fig


def plot_reliability(reliability: pd.DataFrame, ece: Mapping[str, float] | None = None) -> Any:
    """Reliability diagram per ``series`` (accuracy vs mean confidence per bin) and bin counts.

    ``reliability`` has columns ``series``, ``bin_low``, ``bin_high``, ``count``, ``confidence``
    and ``accuracy`` (one row per bin and series); ``ece`` maps a series to its ECE (legend).
    """
    import matplotlib.pyplot as plt

    ece = dict(ece or {})
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=(1.1, 1))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    series = list(dict.fromkeys(reliability["series"]))
    width = 1.0 / max(len(series), 1)
    for i, name in enumerate(series):
        t = reliability[reliability["series"] == name]
        filled = t[t["count"] > 0]
        label = f"{name}, ECE {ece[name]:.3f}" if name in ece else str(name)
        ax.plot(filled["confidence"], filled["accuracy"], marker="o", label=label)
        centers = (t["bin_low"] + t["bin_high"]) / 2
        bw = (t["bin_high"] - t["bin_low"]).to_numpy() * width * 0.9
        hx.bar(centers + (i - (len(series) - 1) / 2) * bw, t["count"], width=bw, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), title="Reliability on the validation learners",
           xlabel="mean confidence in bin (max probability)",
           ylabel="accuracy in bin (share correct)")  # fmt: skip
    ax.legend(loc="upper left")
    hx.set(xlim=(0, 1), title="Validation decisions per confidence bin",
           xlabel="confidence (max probability)", ylabel="decisions (count)")  # fmt: skip
    hx.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_per_class(per_class: pd.DataFrame) -> Any:
    """Recall and precision per action (grouped bars, support in the tick labels).

    ``per_class`` is indexed by action (or has an ``action`` column) with ``recall``,
    ``precision`` and optionally ``support``.
    """
    import matplotlib.pyplot as plt

    if "action" in per_class.columns:
        per_class = per_class.set_index("action")
    fig, ax = plt.subplots(figsize=(11, 4.2))
    x = np.arange(len(per_class))
    ax.bar(x - 0.2, per_class["recall"].fillna(0), width=0.4, label="recall (per-class accuracy)")
    ax.bar(x + 0.2, per_class["precision"].fillna(0), width=0.4, label="precision")
    ticks = [
        f"{a}\n(n = {int(n)})"
        for a, n in zip(per_class.index, per_class.get("support", [0] * len(x)), strict=True)
    ]
    ax.set_xticks(x, ticks)
    ax.set(ylim=(0, 1.05), title="Recall and precision per action (validation learners)",
           xlabel="logged action (n = validation decisions with that action)",
           ylabel="share of decisions")  # fmt: skip
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_baselines(baselines: pd.DataFrame) -> Any:
    """Validation accuracy and NLL of the MLP next to the baselines (one bar per model)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = [str(m) for m in baselines.index]
    y = np.arange(len(names))
    colors = [f"C{i}" for i in range(len(names))]
    panels = (
        ("accuracy", "Accuracy (higher is better)", "accuracy (share correct)"),
        ("nll", "Negative log-likelihood (lower is better)", "NLL (nats per decision)"),
    )
    for ax, (col, title, xlabel) in zip(axes, panels, strict=True):
        values = baselines[col].to_numpy(dtype=float)
        ax.barh(y, values, color=colors)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:.3f}", va="center", fontsize=9)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        ax.set(title=title, xlabel=xlabel, ylabel="model", xlim=(0, top * 1.2))
    fig.suptitle("The MLP against its baselines (validation learners)")
    fig.tight_layout()
    return fig


def plot_rare_actions(table: pd.DataFrame, max_ece: float | None = None) -> Any:
    """Per-action recall (left) and macro-F1 / ECE (right) of each compared model with 95%
    intervals; ``table`` is ``RareActions.table`` (model, metric, estimate, ci_low, ci_high)."""
    import matplotlib.pyplot as plt

    models = list(pd.unique(table["model"]))
    recall = [m for m in pd.unique(table["metric"]) if str(m).startswith("recall_")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [3, 1, 1]})
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        part = table[table["model"] == m].set_index("metric")
        for ax, metrics, x0 in (
            (axes[0], recall, np.arange(len(recall))),
            (axes[1], ["macro_f1"], np.zeros(1)),
            (axes[2], ["ece"], np.zeros(1)),
        ):
            est = part.loc[metrics, "estimate"].to_numpy(float)
            lo = np.clip(est - part.loc[metrics, "ci_low"].to_numpy(float), 0, None)
            hi = np.clip(part.loc[metrics, "ci_high"].to_numpy(float) - est, 0, None)
            x = x0 + (i - (len(models) - 1) / 2) * width
            ax.errorbar(x, est, yerr=np.nan_to_num(np.vstack([lo, hi])), fmt="o", capsize=3,
                        color=f"C{i}", label=m if ax is axes[0] else None)  # fmt: skip
    axes[0].set_xticks(np.arange(len(recall)), [r.removeprefix("recall_") for r in recall],
                       fontsize=8)  # fmt: skip
    axes[0].set(title="Recall per logged action", ylabel="recall (share recovered)")
    axes[0].legend(fontsize=8)
    axes[1].set(title="macro-F1", xticks=[], ylabel="macro-F1 (0–1)")
    axes[2].set(title="ECE after temperature scaling", xticks=[], ylabel="ECE (probability)")
    if max_ece is not None:
        axes[2].axhline(max_ece, color="grey", ls="--", lw=1, label=f"limit {max_ece}")
        axes[2].legend(fontsize=8)
    fig.suptitle("Rare actions: loss options on the validation learners (learner bootstrap, 95%)")
    fig.tight_layout()
    return fig
