"""Matplotlib figures for the training report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.mlp.calibration import expected_calibration_error, reliability_table

__all__ = ["plot_learning_curves", "plot_per_class", "plot_reliability"]


def plot_learning_curves(history: pd.DataFrame, best_epoch: int | None = None):
    """Loss and accuracy per epoch, training vs validation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, what in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history["epoch"], history[f"train_{what}"], label="train")
        ax.plot(history["epoch"], history[f"val_{what}"], label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_reliability(y: np.ndarray, probas: dict[str, np.ndarray], n_bins: int = 15):
    """Reliability diagram (accuracy vs mean confidence per bin) for several probability sets."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, p in probas.items():
        t = reliability_table(y, p, n_bins)
        t = t[t["count"] > 0]
        ece = expected_calibration_error(y, p, n_bins)
        ax.plot(t["confidence"], t["accuracy"], marker="o", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_per_class(per_class: pd.DataFrame):
    """Recall and precision per action (bar chart)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(per_class))
    ax.bar(x - 0.2, per_class["recall"], width=0.4, label="recall (per-class accuracy)")
    ax.bar(x + 0.2, per_class["precision"], width=0.4, label="precision")
    ax.set_xticks(x, per_class["action"], rotation=15)
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    return fig
