"""Matplotlib figures for the ``simulate`` and ``export`` reports: each function takes data and
returns its Figure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ability_growth",
    "action_by_decider",
    "action_mix",
    "answer_calibration",
    "daily_volume",
    "decision_outcomes",
    "engagement_by_arm",
    "item_parameters",
    "propensities",
    "response_coverage",
]


def item_parameters(items: pd.DataFrame) -> Any:
    """True 2PL parameters of the simulated items (difficulty vs discrimination), by module."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    for module, g in items.groupby("module"):
        ax.scatter(g["difficulty"], g["discrimination"], s=18, label=module)
    ax.set(
        title="True item parameters by module",
        xlabel="difficulty b (logits)",
        ylabel="discrimination a (slope per logit)",
    )
    ax.legend(title="module", fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    return fig


def ability_growth(learners: pd.DataFrame) -> Any:
    """Learner abilities at their first and after their last session."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    both = np.r_[learners["theta_start"], learners["theta_end"]]
    edges = np.histogram_bin_edges(both[np.isfinite(both)], bins=40)
    ax.hist(learners["theta_start"], bins=edges, alpha=0.6, label="before the first session")
    ax.hist(learners["theta_end"], bins=edges, alpha=0.6, label="after the last session")
    ax.set(
        title="Learner ability grows with practice",
        xlabel="ability θ (logits)",
        ylabel="learners (count)",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def answer_calibration(calibration: pd.DataFrame) -> Any:
    """Observed share correct against the true 2PL probability per bin (±2 standard errors);
    ``calibration`` has columns ``p_true``, ``observed``, ``se``, ``n``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect agreement")
    ax.errorbar(
        calibration["p_true"],
        calibration["observed"],
        yerr=2 * calibration["se"],
        fmt="o-",
        capsize=3,
        label="simulated answers (±2 SE)",
    )
    ax.set(
        title="Simulated answers follow the 2PL truth",
        xlabel="true 2PL P(correct) (probability, bin mean)",
        ylabel="observed share correct (proportion)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def action_mix(actions: pd.DataFrame) -> Any:
    """Share of decisions per action: logged vs the teacher's mean probability (``actions`` is
    indexed by action, with columns ``share`` and ``expected_share``)."""
    import matplotlib.pyplot as plt

    y = np.arange(len(actions))
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.barh(y - 0.2, actions["share"], 0.4, label="logged")
    ax.barh(y + 0.2, actions["expected_share"], 0.4, label="teacher policy (expected)")
    ax.set_yticks(y, [str(a) for a in actions.index])
    ax.invert_yaxis()
    ax.set(
        title="Logged actions match the teacher's probabilities",
        xlabel="share of decisions",
        ylabel="action",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def propensities(decisions: pd.DataFrame) -> Any:
    """Distribution of the logged action's probability under the logging policy, per action."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4))
    edges = np.linspace(0, 1, 41)
    for action, g in decisions.groupby("action"):
        ax.hist(g["propensity"], bins=edges, histtype="step", lw=1.5, label=action)
    ax.set(
        title="Propensity of the logged action (what off-policy evaluation reweights)",
        xlabel="propensity (probability of the logged action)",
        ylabel="decisions (count)",
        yscale="log",
    )
    ax.legend(title="action", fontsize=8)
    fig.tight_layout()
    return fig


def engagement_by_arm(table: pd.DataFrame) -> Any:
    """Mean next engagement per arm with its 95% CI, and the arm's planted effect (``table`` is
    indexed by arm, with columns ``mean_next_engagement``, ``ci_low``, ``ci_high``,
    ``planted_effect``)."""
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    mean = table["mean_next_engagement"].to_numpy(float)
    err = np.vstack([mean - table["ci_low"].to_numpy(float), table["ci_high"] - mean])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.errorbar(x, mean, yerr=err, fmt="o", ms=8, capsize=6, lw=2, label="mean, 95% CI")
    labels = [
        f"{a}\n(planted +{e:.3f})" if np.isfinite(e) else str(a)
        for a, e in zip(table.index, table["planted_effect"].astype(float), strict=True)
    ]
    ax.set_xticks(x, labels)
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.grid(axis="y", alpha=0.3)
    ax.set(
        title="Next engagement by experiment arm (learner-level mean, 95% CI)",
        xlabel="experiment arm",
        ylabel="mean next engagement (score 0–1)",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def daily_volume(daily: pd.DataFrame) -> Any:
    """Responses and decisions per day (``daily`` has columns ``date``, ``responses``,
    ``decisions``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    series = (("responses", "tab:blue"), ("decisions", "tab:orange"))
    single = len(daily) == 1  # e.g. imported rows that all got the import time: a point
    for ax, (col, color) in zip(axes, series, strict=True):
        ax.plot(daily["date"], daily[col], color=color, lw=1.5, marker="o" if single else None)
        ax.set(title=f"{col.capitalize()} per day", ylabel=f"{col} per day (count)")
        ax.set_ylim(bottom=0, top=max(1.0, float(daily[col].max()) * 1.1) if single else None)
    if single:
        day = pd.Timestamp(daily["date"].iloc[0])
        axes[-1].set_xlim(day - pd.Timedelta(days=3), day + pd.Timedelta(days=3))
    axes[-1].set_xlabel("date (UTC)")
    fig.suptitle("Daily volume in the export window")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def decision_outcomes(decisions: pd.DataFrame) -> Any:
    """Distributions of the outcomes that followed each decision, by decider (as shares of that
    decider's decisions): accuracy over the next answers and engagement afterwards."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    panels = [
        # next accuracy takes values k/n (n ≤ 5): bins centred on 0, 0.1, …, 1
        ("next_accuracy", "Next accuracy", "share correct on the next ≤5 answers (proportion)",
         np.linspace(-0.05, 1.05, 12)),
        ("next_engagement", "Next engagement", "engagement after the decision (score 0–1)",
         np.linspace(0, 1, 41)),
    ]  # fmt: skip
    for ax, (col, title, xlabel, edges) in zip(axes, panels, strict=True):
        for who, g in decisions.groupby("decided_by"):
            values = g[col].dropna()
            weights = np.full(len(values), 1.0 / max(len(values), 1))
            ax.hist(values, bins=edges, weights=weights, histtype="step", lw=2,
                    label=f"decided by {who}")  # fmt: skip
        ax.set(title=title, xlabel=xlabel, ylabel="share of the decider's decisions")
        ax.legend(fontsize=8)
    fig.suptitle("Outcomes after the logged decisions")
    fig.tight_layout()
    return fig


def action_by_decider(crosstab: pd.DataFrame) -> Any:
    """Decisions per action, stacked by decider (a crosstab action × decided_by; an ``All``
    margin row/column is ignored)."""
    import matplotlib.pyplot as plt

    table = crosstab.drop(index="All", columns="All", errors="ignore")
    fig, ax = plt.subplots(figsize=(11, 4))
    left = np.zeros(len(table))
    for who in table.columns:
        ax.barh(table.index, table[who], left=left, label=f"decided by {who}")
        left += table[who].to_numpy(float)
    ax.invert_yaxis()
    ax.set(title="Action taken, by decider", xlabel="decisions (count)", ylabel="action")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def response_coverage(per_item: pd.Series, per_learner: pd.Series, modules: pd.DataFrame) -> Any:
    """Responses per item, responses per learner and the share correct per module (``modules``
    is indexed by module, with a column ``p_correct``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].hist(per_item, bins=30)
    axes[0].set(title="Responses per item", xlabel="responses per item (count)", ylabel="items")
    axes[1].hist(per_learner, bins=30)
    axes[1].set(
        title="Responses per learner", xlabel="responses per learner (count)", ylabel="learners"
    )
    axes[2].bar([str(m) for m in modules.index], modules["p_correct"])
    if modules.empty:  # no module column (e.g. imported responses without one)
        axes[2].text(0.5, 0.5, "no modules in the responses", ha="center", va="center",
                     transform=axes[2].transAxes)  # fmt: skip
        axes[2].set_xticks([])
    axes[2].set(
        title="Share correct by module",
        xlabel="module",
        ylabel="share correct (proportion)",
        ylim=(0, 1),
    )
    fig.suptitle("Item and learner coverage of the responses")
    fig.tight_layout()
    return fig
