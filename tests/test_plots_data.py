"""Smoke tests of the simulate/export figures: each has a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from learnops.data import plots  # noqa: E402


def _check(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    for ax in axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title() or suptitle, "figure without a title"
        assert ax.get_xlabel() or ax.get_ylabel()
    main = axes[0]
    assert main.get_title() and main.get_ylabel()
    assert any(ax.get_xlabel() for ax in axes)
    assert 10 <= fig.get_size_inches()[0] <= 15
    plt.close(fig)


@pytest.fixture(scope="module")
def sim():
    from conftest import SMALL_SIM

    from learnops.data.simulate import simulate

    return simulate(SMALL_SIM.model_copy(update={"n_learners": 40}), 3)


def test_simulate_figures(sim):
    from learnops.stages.simulate import action_table, answer_calibration, engagement_by_arm

    _check(plots.item_parameters(sim.items))
    _check(plots.ability_growth(sim.learners))
    _check(plots.answer_calibration(answer_calibration(sim)))
    _check(plots.action_mix(action_table(sim)))
    _check(plots.propensities(sim.decisions))
    _check(plots.engagement_by_arm(engagement_by_arm(sim)))


def test_export_figures(sim):
    from learnops.stages.export import action_by_decider, daily_volume, module_coverage

    dec, resp = sim.decisions, sim.responses
    _check(plots.daily_volume(daily_volume(dec, resp)))
    _check(plots.action_by_decider(action_by_decider(dec)))
    _check(plots.decision_outcomes(dec))
    per_item, per_learner = resp.groupby("item_id").size(), resp.groupby("learner_hash").size()
    _check(plots.response_coverage(per_item, per_learner, module_coverage(resp)))


def test_every_axis_of_a_panel_figure_is_labelled(sim):
    fig = plots.decision_outcomes(sim.decisions)
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None
    plt.close(fig)
