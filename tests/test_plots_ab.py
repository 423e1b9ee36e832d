"""Smoke tests of the A/B report figures: each draws, has a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_ab_analysis import WEIGHTS, make_decisions  # noqa: E402

from learnops.ab import (  # noqa: E402
    analyze,
    cumulative_effects,
    events_from_decisions,
    learner_table,
    mde,
    plots,
)
from learnops.stages.ab_analysis import ci_widths, comparison_table  # noqa: E402

METRICS = ["accuracy", "engagement", "success"]


@pytest.fixture(scope="module")
def analysed():
    events = events_from_decisions(make_decisions(300, seed=5))
    cov = {m: f"pre_{m}" for m in METRICS}
    results = analyze(events, planned_split=WEIGHTS, covariates=cov)
    unadjusted = analyze(events, planned_split=WEIGHTS)
    return events, results, unadjusted


def _labelled(fig):
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_title().strip()
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
    w, _ = fig.get_size_inches()
    assert 10 <= w <= 15
    plt.close(fig)


def test_group_sizes_and_forest(analysed):
    _, results, _ = analysed
    fig = plots.plot_group_sizes(results)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    observed = list(results["srm"]["observed"].values())
    assert heights[: len(observed)] == observed
    assert "SRM" in ax.get_title()
    _labelled(fig)
    fig = plots.plot_forest(results)
    assert len(fig.axes[0].get_yticklabels()) == len(results["comparisons"])
    _labelled(fig)


def test_metric_distributions_one_panel_per_metric(analysed):
    events, _, _ = analysed
    fig = plots.plot_metric_distributions(learner_table(events, METRICS), METRICS)
    assert [ax.get_title() for ax in fig.axes] == METRICS
    assert "proportion" in fig.axes[0].get_ylabel()
    _labelled(fig)


def test_cuped_effect_draws_both_widths(analysed):
    _, results, unadjusted = analysed
    widths = ci_widths(results, unadjusted)
    fig = plots.plot_cuped_effect(widths)
    bars = sorted(p.get_width() for p in fig.axes[0].patches)
    expected = sorted([*widths["ci_width"], *widths["ci_width_no_cuped"]])
    np.testing.assert_allclose(bars, expected)
    assert fig.axes[0].get_legend() is not None
    _labelled(fig)
    assert len(comparison_table(results, unadjusted)) == len(widths)


def test_cumulative(analysed):
    events, _, _ = analysed
    cum = cumulative_effects(events, "engagement", "gpt4")
    fig = plots.plot_cumulative(cum, "engagement")
    assert "score" in fig.axes[0].get_ylabel()
    _labelled(fig)
    empty = plots.plot_cumulative(cum.iloc[0:0], "engagement")
    _labelled(empty)


def test_power_curve_passes_through_the_reported_mde():
    inputs = {
        "sd": 0.12, "n_current": 150, "alpha": 0.05, "power": 0.8, "ratio": 1.5,
        "threshold": 0.01, "metric": "engagement",
        "mde": mde(150, 0.12, alpha=0.05, power=0.8, ratio=1.5),
    }  # fmt: skip
    fig = plots.plot_power(inputs)
    ax = fig.axes[0]
    curve = ax.lines[0]
    x, y = curve.get_xdata(), curve.get_ydata()
    ref = [mde(n, 0.12, alpha=0.05, power=0.8, ratio=1.5) for n in x]
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    assert np.interp(150, x, y) == pytest.approx(inputs["mde"], rel=0.02)
    assert ax.get_xscale() == "log"
    _labelled(fig)


def test_metric_label_has_a_unit_for_unknown_metrics():
    assert plots.metric_label("dwell") == "dwell (metric units)"
    assert plots.metric_label("engagement") == "engagement (score 0–1)"


def test_confidence_sequence_figure_marks_threshold_and_crossing():
    import pandas as pd

    rows = []
    for look in range(1, 11):
        n = 100 * look
        for t, d in (("ml", 0.05), ("hybrid", 0.0)):
            half, fixed = 0.3 / look**0.5, 0.2 / look**0.5
            rows.append({"look": look, "n_learners": n, "treatment": t, "diff": d,
                         "cs_low": d - half, "cs_high": d + half, "fixed_low": d - fixed,
                         "fixed_high": d + fixed, "significant": False})  # fmt: skip
    seq = pd.DataFrame(rows)
    fig = plots.plot_confidence_sequence(seq, "engagement", threshold=0.01)
    assert len(fig.axes) == 2
    ml = next(ax for ax in fig.axes if ax.get_title().startswith("ml"))
    labels = [h.get_label() for h in ml.get_legend().legend_handles]
    # ml: CS lower bound 0.05 − 0.3/√look > 0.01 from look 57 → never within 10 looks
    assert not any(lbl.startswith("CS above threshold") for lbl in labels)
    assert any("practical threshold" in lbl for lbl in labels)
    _labelled(fig)
    seq.loc[seq.treatment == "ml", "cs_low"] = 0.02
    fig = plots.plot_confidence_sequence(seq, "engagement", threshold=0.01)
    ml = next(ax for ax in fig.axes if ax.get_title().startswith("ml"))
    labels = [h.get_label() for h in ml.get_legend().legend_handles]
    assert "CS above threshold: look 1" in labels
    _labelled(fig)


def test_group_sizes_without_a_plan():
    res = {"srm": {"checked": False, "observed": {"gpt4": 10, "ml": 12}, "expected": {},
                   "mismatch": False}}  # fmt: skip
    fig = plots.plot_group_sizes(res)
    assert "not checked" in fig.axes[0].get_title()
    _labelled(fig)
