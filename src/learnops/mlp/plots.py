"""Matplotlib figures for the ``train_mlp`` report: each function takes data, returns a Figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "plot_baselines",
    "plot_learning_curves",
    "plot_attribution_heatmap",
    "plot_partial_dependence",
    "plot_per_class",
    "plot_permutation_importance",
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


def plot_permutation_importance(perm: pd.DataFrame) -> Any:
    """Log-loss rise and accuracy drop when each feature is shuffled, with 95% intervals (one
    row per feature, most important on top); ``perm`` is ``Importance.permutation``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 0.3 * len(perm) + 1.6), sharey=True)
    y = np.arange(len(perm))
    for ax, col, label in (
        (axes[0], "log_loss_rise", "log-loss rise (nats per decision)"),
        (axes[1], "accuracy_drop", "accuracy drop (share of decisions)"),
    ):
        est = perm[col].to_numpy(float)
        err = np.vstack([np.clip(est - perm[f"{col}_ci_low"], 0, None),
                         np.clip(perm[f"{col}_ci_high"] - est, 0, None)])  # fmt: skip
        ax.barh(y, est, xerr=np.nan_to_num(err), color="C0", alpha=0.7, capsize=2)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(label)
    axes[0].set_yticks(y, list(perm.index), fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("Permutation importance on the validation learners (learner bootstrap, 95% CI)")
    fig.tight_layout()
    return fig


def plot_attribution_heatmap(attribution: pd.DataFrame) -> Any:
    """Mean |integrated gradient| (logits) per feature (rows) and chosen action (columns)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.3 * len(attribution) + 1.8))
    im = ax.imshow(attribution.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(attribution.shape[1]), list(attribution.columns), rotation=20, fontsize=8)
    ax.set_yticks(range(len(attribution)), list(attribution.index), fontsize=8)
    for i in range(attribution.shape[0]):
        for j in range(attribution.shape[1]):
            ax.text(j, i, f"{attribution.iat[i, j]:.2f}", ha="center", va="center",
                    fontsize=7, color="white")  # fmt: skip
    fig.colorbar(im, ax=ax, label="mean |attribution| (logits)")
    ax.set_xlabel("the model's chosen action")
    ax.set_title("Mean |integrated gradient| of the chosen logit (baseline: feature means)")
    fig.tight_layout()
    return fig


def plot_partial_dependence(
    grids: Mapping[str, np.ndarray],
    average: Mapping[str, np.ndarray],
    ice: Mapping[str, np.ndarray],
    actions: tuple[str, ...],
) -> Any:
    """Per feature, the partial dependence of each action's probability (thick lines) and the
    ICE curves (thin) of the action whose average moves most."""
    import matplotlib.pyplot as plt

    feats = list(grids)
    fig, axes = plt.subplots(1, len(feats), figsize=(4.6 * len(feats), 4.0), squeeze=False)
    for ax, f in zip(axes[0], feats, strict=True):
        g, avg = grids[f], average[f]
        k = int(np.argmax(avg.max(axis=1) - avg.min(axis=1)))
        for curve in ice[f][k]:
            ax.plot(g, curve, color=f"C{k}", alpha=0.12, lw=0.8)
        for i, a in enumerate(actions):
            ax.plot(g, avg[i], color=f"C{i}", lw=2.2, label=a)
        ax.set(xlabel=f"{f} (raw units)", ylabel="P(action), calibrated", ylim=(0, 1),
               title=f"{f}: PD of each action, ICE of {actions[k]}")  # fmt: skip
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Partial dependence and ICE of the top features (validation decisions)")
    fig.tight_layout()
    return fig
