"""Matplotlib figures for fitted IRT models (used by notebooks/03_fit_irt.ipynb)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from learnops.irt.model import IrtFit


def _theta_grid() -> np.ndarray:
    return np.linspace(-4, 4, 201)


def _curves(f: IrtFit, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(θ) (items × nodes) and item information (items × nodes)."""
    p = f.params()
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    s = 1 / (1 + np.exp(-z))
    c = p.c[:, None]
    prob = c + (1 - c) * s
    dp = (1 - c) * s * (1 - s) * p.a[:, None]
    return prob, dp**2 / (prob * (1 - prob))


def item_characteristic_curves(f: IrtFit, item_ids: list[str] | None = None, ax: Any = None):
    """P(correct | θ) for a few items (default: easiest, median and hardest)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    items = f.items.reset_index(drop=True)
    if item_ids is None:
        order = items["difficulty"].argsort().to_numpy()
        pick = order[[0, len(order) // 4, len(order) // 2, 3 * len(order) // 4, -1]]
        item_ids = list(dict.fromkeys(items["item_id"].iloc[pick]))
    theta = _theta_grid()
    prob, _ = _curves(f, theta)
    for iid in item_ids:
        k = int(np.flatnonzero(items["item_id"] == iid)[0])
        row = items.iloc[k]
        ax.plot(theta, prob[k], label=f"{iid} (a={row.discrimination:.2f}, b={row.difficulty:.2f})")
    ax.set(xlabel="ability θ", ylabel="P(correct)", title=f"Item characteristic curves ({f.model})")
    ax.legend(fontsize=8)
    return ax


def information_curve(f: IrtFit, ax: Any = None):
    """Sum of item information over θ, with the implied SE(θ) on a twin axis."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    theta = _theta_grid()
    _, info = _curves(f, theta)
    total = info.sum(axis=0)
    ax.plot(theta, total, color="C0")
    ax.set(xlabel="ability θ", ylabel="test information", title=f"Test information ({f.model})")
    twin = ax.twinx()
    twin.plot(theta, 1 / np.sqrt(total), color="C1", linestyle="--")
    twin.set_ylabel("SE(θ) = 1/√I(θ)", color="C1")
    return ax


def parameter_histograms(f: IrtFit, axes: Any = None):
    """Histograms of item difficulty and discrimination."""
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(10, 3.5))[1]
    axes[0].hist(f.items["difficulty"], bins=30, color="C0")
    axes[0].set(xlabel="difficulty b", ylabel="items", title="Item difficulty")
    axes[1].hist(f.items["discrimination"], bins=30, color="C2")
    axes[1].set(xlabel="discrimination a", ylabel="items", title="Item discrimination")
    return axes


def ability_distribution(f: IrtFit, ax: Any = None):
    """Histogram of learner abilities against the N(0, 1) prior density."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    ax.hist(f.abilities["theta"], bins=40, density=True, alpha=0.7, label="EAP θ")
    grid = _theta_grid()
    ax.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    ax.set(xlabel="ability θ", ylabel="density", title=f"Learner abilities ({f.model})")
    ax.legend()
    return ax


def recovery_scatter(f: IrtFit, truth: pd.DataFrame, axes: Any = None) -> dict[str, float]:
    """Estimated vs true difficulty and discrimination; returns the correlations."""
    import matplotlib.pyplot as plt

    merged = f.items.merge(truth.astype({"item_id": str}), on="item_id", suffixes=("", "_true"))
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(10, 4))[1]
    out = {}
    for ax, col in zip(axes, ("difficulty", "discrimination"), strict=True):
        x, y = merged[f"{col}_true"], merged[col]
        r = float(np.corrcoef(x, y)[0, 1]) if len(merged) > 1 else float("nan")
        out[col] = r
        ax.scatter(x, y, s=12, alpha=0.7)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlabel=f"true {col}", ylabel=f"estimated {col}", title=f"{col}: r = {r:.3f}")
    return out
