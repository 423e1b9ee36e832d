"""Smoke tests of the register report figures: each draws (also with nothing registered), has a
title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from learnops.lifecycle import plots  # noqa: E402
from learnops.stages.register import comparison_table, history_tables  # noqa: E402


def _labelled(fig):
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_title().strip()
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
    assert 10 <= fig.get_size_inches()[0] <= 15
    plt.close(fig)


def _outcome(model, version, metrics, prod_version=None, prod_metrics=None):
    return {
        "model_type": model,
        "version": version,
        "metrics": metrics,
        "production_version": prod_version,
        "production_metrics": prod_metrics,
    }


def test_candidate_vs_production_bars_hold_the_metrics():
    outcomes = [
        _outcome("mlp", "v2", {"accuracy": 0.9, "ece": 0.03, "n": 100}, "v1", {"accuracy": 0.8}),
        _outcome("irt", "v1", {"accuracy": 0.7, "auc": 0.75, "log_loss": 0.55}),
    ]
    cmp = comparison_table(outcomes)
    assert cmp[["model", "who", "version"]].values.tolist() == [
        ["mlp", "candidate", "v2"],
        ["mlp", "production", "v1"],
        ["irt", "candidate", "v1"],
    ]
    fig = plots.plot_candidate_vs_production(cmp)
    mlp_ax, irt_ax = fig.axes
    assert [t.get_text() for t in mlp_ax.get_xticklabels()] == ["accuracy", "ece"]
    heights = sorted(p.get_height() for p in mlp_ax.patches if np.isfinite(p.get_height()))
    assert heights == [0.03, 0.8, 0.9]  # production has no ECE: no bar
    assert [t.get_text() for t in mlp_ax.get_legend().get_texts()] == [
        "candidate v2",
        "production v1",
    ]
    assert sorted(p.get_height() for p in irt_ax.patches) == [0.55, 0.7, 0.75]
    _labelled(fig)


def test_version_metrics_circle_production():
    vm = pd.DataFrame(
        [
            ("mlp", "v1", 1, "archived", "accuracy", 0.80),
            ("mlp", "v2", 2, "deployed", "accuracy", 0.90),
            ("mlp", "v10", 10, "completed", "accuracy", 0.85),
            ("mlp", "v2", 2, "deployed", "ece", 0.05),
            ("irt", "v1", 1, "deployed", "auc", 0.7),
        ],
        columns=["model_type", "version", "number", "status", "metric", "value"],
    )
    fig = plots.plot_version_metrics(vm)
    mlp_ax = fig.axes[0]
    assert [t.get_text() for t in mlp_ax.get_xticklabels()] == ["v1", "v2", "v10"]
    acc = mlp_ax.lines[0]
    np.testing.assert_allclose(acc.get_ydata(), [0.80, 0.90, 0.85])
    circled = np.concatenate([c.get_offsets() for c in mlp_ax.collections])
    np.testing.assert_allclose(sorted(circled[:, 1]), [0.05, 0.90])
    _labelled(fig)


def test_figures_when_nothing_is_registered():
    hist, vm = history_tables([])
    _labelled(plots.plot_version_metrics(vm))
    _labelled(plots.plot_candidate_vs_production(comparison_table([])))
