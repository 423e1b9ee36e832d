"""Smoke tests of the train_mlp report figures: each has a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from learnops.contracts import ACTIONS  # noqa: E402
from learnops.mlp import plots  # noqa: E402


def _check(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    assert fig.get_suptitle() or all(ax.get_title() for ax in axes)
    for ax in axes:
        assert ax.get_title(), ax
        assert ax.get_xlabel() and ax.get_ylabel(), ax
    w, _ = fig.get_size_inches()
    assert 10 <= w <= 15
    plt.close(fig)


@pytest.fixture
def val():
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(ACTIONS), 400)
    logits = rng.normal(size=(400, len(ACTIONS)))
    logits[np.arange(400), y] += 1.5
    return y, logits


def test_learning_curves():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [0.9, 0.6, 0.5],
            "val_loss": [0.95, 0.7, 0.72],
            "train_accuracy": [0.6, 0.7, 0.8],
            "val_accuracy": [0.55, 0.68, 0.7],
        }
    )
    fig = plots.plot_learning_curves(history, best_epoch=2)
    assert len(fig.axes[0].get_lines()) == 3  # train, validation, kept epoch
    _check(fig)


def test_reliability(val):
    from learnops.mlp.calibration import apply_temperature, reliability_table

    y, logits = val
    tables = [
        reliability_table(y, apply_temperature(logits, t), 10).assign(series=name)
        for name, t in (("before", 1.0), ("after", 1.5))
    ]
    fig = plots.plot_reliability(pd.concat(tables), {"before": 0.1, "after": 0.05})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "before, ECE 0.100" in labels and "after, ECE 0.050" in labels
    _check(fig)


def test_per_class(val):
    from learnops.mlp.metrics import per_class_accuracy

    y, logits = val
    table = per_class_accuracy(y, logits)
    _check(plots.plot_per_class(table))  # action as a column
    _check(plots.plot_per_class(table.set_index("action")))  # or as the index


def test_baselines():
    baselines = pd.DataFrame(
        {"accuracy": [0.86, 0.59, 0.84], "nll": [0.43, 1.09, 0.51]},
        index=pd.Index(["mlp", "majority", "logistic_regression"], name="model"),
    )
    fig = plots.plot_baselines(baselines)
    assert len(fig.axes[0].patches) == 3
    _check(fig)
