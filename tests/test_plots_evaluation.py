"""Smoke tests of the evaluation report's figures: each draws, is titled and labels its axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from learnops.config import Targets  # noqa: E402
from learnops.contracts import ACTIONS  # noqa: E402
from learnops.evaluation import plots  # noqa: E402
from learnops.evaluation.calibration import binary_calibration_table, reliability_table  # noqa: E402
from learnops.evaluation.decisions import (  # noqa: E402
    CONFIDENCE_EDGES,
    add_confidence_bucket,
    agreement_table,
    outcomes_by,
    threshold_analysis,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    """A small fake evaluation: 400 decisions by 40 learners, probabilities over the actions."""
    rng = np.random.default_rng(0)
    n, k = 400, len(ACTIONS)
    proba = rng.dirichlet(np.ones(k) * 0.5, size=n)
    y = np.array([rng.choice(k, p=p) for p in proba])
    pred = proba.argmax(axis=1)
    df = pd.DataFrame(
        {
            "learner_hash": [f"l{i % 40}" for i in range(n)],
            "decided_by": np.where(rng.random(n) < 0.4, "ml", "llm"),
            "action": np.asarray(ACTIONS, dtype=object)[y],
            "model_action": np.asarray(ACTIONS, dtype=object)[pred],
            "model_confidence": proba.max(axis=1),
            "correct": (pred == y).astype(int),
            "next_accuracy": rng.random(n),
            "next_engagement": rng.random(n),
            "session_completed": rng.random(n) < 0.7,
        }
    )
    df = add_confidence_bucket(df, "model_confidence", CONFIDENCE_EDGES)
    return {"df": df, "y": y, "proba": proba}


def assert_labelled(fig) -> None:
    """The figure has a title and every plotting axes (not a colorbar) labels both axes."""
    titles = [fig._suptitle.get_text() if fig._suptitle else ""]
    titles += [ax.get_title() for ax in fig.axes]
    assert any(t.strip() for t in titles), "figure without a title"
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip(), f"axes {ax.get_title()!r} without an x label"
        assert ax.get_ylabel().strip(), f"axes {ax.get_title()!r} without a y label"
        assert ax.has_data() or ax.images, f"axes {ax.get_title()!r} is empty"


def test_plot_headline():
    boot = pd.DataFrame(
        {
            "metric": ["accuracy", "macro_f1", "ece", "log_loss"],
            "estimate": [0.84, 0.6, 0.02, 0.45],
            "ci_low": [0.81, 0.55, 0.021, 0.40],
            "ci_high": [0.86, 0.65, 0.05, 0.49],
        }
    )
    fig = plots.plot_headline(boot)
    assert_labelled(fig)
    assert len(fig.axes) == 4
    assert fig.axes[3].get_ylabel() == "log-loss (nats per decision)"


def test_plot_confusion(data):
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(data["df"]["action"], data["df"]["model_action"], labels=list(ACTIONS))
    confusion = pd.DataFrame(cm, index=list(ACTIONS), columns=list(ACTIONS))
    normalized = confusion.div(confusion.sum(axis=1).replace(0, 1), axis=0)
    fig = plots.plot_confusion(confusion, normalized)
    assert_labelled(fig)
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert len(cells) == len(ACTIONS) ** 2 and cells[0].startswith(str(cm[0, 0]))


def test_plot_per_class():
    per_class = pd.DataFrame(
        {
            "action": list(ACTIONS),
            "precision": [0.9, 0.8, 0.7, 0.6, 0.5],
            "recall": [0.8, 0.7, 0.6, 0.5, 0.4],
            "f1": [0.85, 0.75, 0.65, 0.55, 0.45],
            "support": [100, 80, 60, 40, 20],
        }
    )
    assert_labelled(plots.plot_per_class(per_class))


def test_plot_reliability(data):
    sharper = data["proba"] ** 1.5
    sharper /= sharper.sum(axis=1, keepdims=True)
    tables = {
        (w, s): reliability_table(data["y"], p, 10, s)
        for w, p in (("before", data["proba"]), ("after", sharper))
        for s in ("uniform", "quantile")
    }
    fig = plots.plot_reliability(tables, {k: 0.05 for k in tables}, temperature=1.2)
    assert_labelled(fig)
    assert len(fig.axes) == 2
    assert "T = 1.20" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_plot_threshold_curve(data):
    table = threshold_analysis(data["df"]["model_confidence"], data["df"]["correct"])
    fig = plots.plot_threshold_curve(table, Targets(), current=0.6, chosen=0.7)
    assert_labelled(fig)
    assert fig.axes[0].get_legend() is not None


@pytest.mark.parametrize("by", ["confidence_bucket", "action"])
def test_plot_agreement(data, by):
    table = agreement_table(data["df"], by=["decided_by", by])
    fig = plots.plot_agreement(table, by=by)
    assert_labelled(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 2  # one series per decider


@pytest.mark.parametrize("by", ["action", "decided_by"])
def test_plot_outcomes(data, by):
    metrics = ["next_accuracy", "next_engagement", "session_completed"]
    table = outcomes_by(data["df"], by=by, metrics=metrics)
    fig = plots.plot_outcomes(table, by, metrics)
    assert_labelled(fig)
    assert len(fig.axes) == 3


def test_plot_ope():
    table = pd.DataFrame(
        {
            "policy": ["deterministic", "deterministic", "stochastic", "logged"],
            "estimator": ["ips", "dr", "snips", "observed mean"],
            "value": [0.52, 0.51, 0.5, 0.49],
            "ci_low": [0.45, 0.48, 0.47, 0.47],
            "ci_high": [0.59, 0.54, 0.53, 0.51],
            "ess": [120.0, 120.0, 300.0, 400.0],
        }
    )
    fig = plots.plot_ope(table)
    assert_labelled(fig)
    assert "next_engagement" in fig.axes[0].get_xlabel()


def test_plot_binary_calibration():
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(float)
    fig = plots.plot_binary_calibration(binary_calibration_table(y, p, n_bins=10), "IRT")
    assert_labelled(fig)
    assert fig._suptitle.get_text() == "IRT"


def test_plot_latency():
    lat = np.random.default_rng(2).lognormal(mean=-1.0, sigma=0.3, size=200)
    fig = plots.plot_latency(lat, target_ms=100.0)
    assert_labelled(fig)
    assert "ms" in fig.axes[0].get_xlabel()


def test_plot_slices_draws_one_panel_per_metric():
    import numpy as np
    import pandas as pd

    from learnops.evaluation.plots import plot_slices
    from learnops.evaluation.slices import slice_report

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    proba = rng.dirichlet(np.ones(5), 200)
    dims = {
        "a": pd.Series(np.resize(["x", "y"], 200)),
        "b": pd.Series(np.resize(["p", "q", "r"], 200)),
    }
    rep = slice_report(y, proba, np.arange(200) // 4, dims, 0.5, n_boot=20)
    fig = plot_slices(rep.table)
    assert len(fig.axes) == 4
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "a: x", "a: y", "b: p", "b: q", "b: r",
    ]  # fmt: skip
