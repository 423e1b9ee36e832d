"""Smoke tests of the monitoring figures: each has a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from learnops.monitoring import metrics as mon  # noqa: E402
from learnops.monitoring import plots  # noqa: E402


def _check(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        if not (ax.get_xlabel() or ax.get_ylabel()):
            pytest.fail("an axis without labels")
    assert any(ax.get_title() for ax in axes)
    assert all(ax.get_ylabel() for ax in axes)
    assert 10 <= fig.get_size_inches()[0] <= 15
    plt.close(fig)


@pytest.fixture(scope="module")
def decisions():
    from conftest import SMALL_SIM

    from learnops.data.simulate import simulate

    return simulate(SMALL_SIM.model_copy(update={"n_learners": 60}), 4).decisions


def test_time_series_figures(decisions):
    rolling = mon.rolling_metrics(decisions, "7D")
    _check(plots.usage_over_time(rolling, target=0.7))
    _check(plots.latency_over_time(rolling, target_ms=100))
    _check(plots.outcomes_over_time(rolling, target_accuracy=0.85))


def test_drift_figures(decisions):
    ref, cur = mon.time_split(decisions, 0.7)
    drift = mon.drift_report(ref, cur)
    fig = plots.drift_bars(drift, alpha=0.05)
    assert len(fig.axes[0].patches) == 18 and len(fig.axes[1].patches) == 18
    _check(fig)
    fig = plots.feature_distributions(ref, cur, ["engagement", "avg_response_time_s"])
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_visible()] == [
        "engagement (score 0–1)",
        "mean response time (s)",
    ]
    _check(fig)
