"""Matplotlib figures for the ``fit_irt`` report: each function takes data, returns a Figure.

Abilities θ and difficulties b are on the logit scale of the model (θ − b = 1 multiplies the odds
of a correct answer by e^a), so their axes read "(logits)".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from learnops.irt import IrtFit

__all__ = [
    "ability_distribution",
    "heldout_comparison",
    "information_curve",
    "item_characteristic_curves",
    "item_curves",
    "parameter_histograms",
    "recovery_scatter",
]

THETA = "ability θ (logits)"


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


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def item_characteristic_curves(f: IrtFit, item_ids: list[str] | None = None, ax: Any = None):
    """P(correct | θ) for a few items (default: five spanning the difficulty range)."""
    fig, ax = _axes(ax, (10, 4.5))
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
        label = f"{iid} (a = {row.discrimination:.2f}, b = {row.difficulty:.2f}"
        label += f", c = {row.guessing:.2f})" if "guessing" in items.columns else ")"
        ax.plot(theta, prob[k], label=label)
    ax.set(xlabel=THETA, ylabel="P(correct) (probability)", ylim=(0, 1),
           title=f"Item characteristic curves ({f.model})")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    return fig


def information_curve(f: IrtFit, ax: Any = None):
    """Sum of item information over θ, with the implied SE(θ) on a twin axis."""
    fig, ax = _axes(ax, (10, 4.5))
    theta = _theta_grid()
    _, info = _curves(f, theta)
    total = info.sum(axis=0)
    ax.plot(theta, total, color="C0", label="test information I(θ)")
    ax.set(xlabel=THETA, ylabel="test information I(θ) (1/logit²)",
           title=f"Test information and SE(θ) ({f.model}, {len(f.items)} items)")  # fmt: skip
    twin = ax.twinx()
    twin.plot(theta, 1 / np.sqrt(total), color="C1", linestyle="--", label="SE(θ) = 1/√I(θ)")
    twin.set_ylabel("SE(θ) (logits)", color="C1")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    return fig


def item_curves(f: IrtFit, item_ids: list[str] | None = None):
    """Item characteristic curves (left) and test information with SE(θ) (right)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    item_characteristic_curves(f, item_ids, ax=axes[0])
    information_curve(f, ax=axes[1])
    fig.tight_layout()
    return fig


def parameter_histograms(f: IrtFit):
    """Histograms of item difficulty and discrimination (and guessing for the 3PL)."""
    import matplotlib.pyplot as plt

    panels = [
        ("difficulty", "difficulty b (logits)", "Item difficulty", "C0"),
        ("discrimination", "discrimination a (log-odds per θ)", "Item discrimination", "C2"),
    ]  # fmt: skip
    if "guessing" in f.items.columns:
        panels.append(("guessing", "guessing c (probability)", "Item guessing floor", "C4"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) if len(panels) > 2 else 12,
                                                      4))  # fmt: skip
    for ax, (col, xlabel, title, color) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.hist(f.items[col].dropna(), bins=30, color=color)
        ax.set(xlabel=xlabel, ylabel="items (count)", title=f"{title} ({f.model})")
    fig.tight_layout()
    return fig


def ability_distribution(f: IrtFit):
    """Histogram of learner abilities against the N(0, 1) prior density."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.hist(f.abilities["theta"], bins=40, density=True, alpha=0.7, label="estimated θ (EAP)")
    grid = _theta_grid()
    ax.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1) prior")
    ax.set(xlabel=THETA, ylabel="density (learners per logit, normalized)",
           title=f"Learner abilities ({f.model}, {len(f.abilities)} learners)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    return fig


def recovery_scatter(recovery: pd.DataFrame, r: dict[str, float] | None = None):
    """Estimated vs true difficulty and discrimination (one point per item).

    ``recovery`` has ``difficulty``, ``difficulty_true``, ``discrimination`` and
    ``discrimination_true``; ``r`` the correlations shown in the titles. With no rows (real data,
    no ground truth) the panels say so.
    """
    import matplotlib.pyplot as plt

    r = dict(r or {})
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    units = {"difficulty": "logits", "discrimination": "log-odds per θ"}
    for ax, col in zip(axes, ("difficulty", "discrimination"), strict=True):
        unit = units[col]
        ax.set(xlabel=f"true {col} ({unit})", ylabel=f"estimated {col} ({unit})")
        if recovery.empty:
            ax.set_title(f"{col}: no ground truth")
            ax.text(0.5, 0.5, "no simulator truth (real data)", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
            continue
        x = recovery[f"{col}_true"].to_numpy(float)
        y = recovery[col].to_numpy(float)
        ax.scatter(x, y, s=14, alpha=0.7, label="item")
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="estimate = truth")
        rv = r.get(col, float("nan"))
        ax.set_title(f"{col}: r = {rv:.3f} ({len(recovery)} items)")
        ax.legend(loc="upper left")
    fig.suptitle("Parameter recovery: estimated against the simulator's true item parameters")
    fig.tight_layout()
    return fig


def heldout_comparison(heldout: pd.DataFrame):
    """Held-out log-loss and AUC per model (``heldout`` indexed by model)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    names = [str(m) for m in heldout.index]
    y = np.arange(len(names))
    panels = (
        ("log_loss", "Held-out log-loss (lower is better)", "log-loss (nats per answer)"),
        ("auc", "Held-out AUC (higher is better)", "ROC AUC (probability of correct ranking)"),
    )
    for ax, (col, title, xlabel) in zip(axes, panels, strict=True):
        values = heldout[col].to_numpy(dtype=float)
        ax.barh(y, np.nan_to_num(values), color=[f"C{i}" for i in range(len(names))])
        for yi, v in zip(y, values, strict=True):
            ax.text(0 if np.isnan(v) else v, yi, f" {v:.4f}", va="center", fontsize=9)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        ax.set(title=title, xlabel=xlabel, ylabel="model", xlim=(0, top * 1.2))
    fig.tight_layout()
    return fig
