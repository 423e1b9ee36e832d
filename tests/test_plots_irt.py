"""Smoke tests of the fit_irt report figures: each has a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from learnops import irt  # noqa: E402
from learnops.config import IrtConfig  # noqa: E402
from learnops.irt import plots  # noqa: E402
from learnops.irt.sim import simulate  # noqa: E402

CFG = IrtConfig(quad_points=21, max_iter=50, tol=1e-3)


def _check(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        if not ax.get_title():  # a twin axis shares its host's title and x label
            assert ax.get_ylabel(), ax
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), ax
    w, _ = fig.get_size_inches()
    assert 10 <= w <= 15
    plt.close(fig)


@pytest.fixture(scope="module", params=["2pl", "3pl"])
def sim_fit(request):
    sim = simulate(150, 12, model=request.param, seed=3)
    return sim, irt.fit(sim.responses, request.param, config=CFG, se="none")


def test_item_curves(sim_fit):
    _, f = sim_fit
    fig = plots.item_curves(f)
    assert len(fig.axes[0].get_lines()) == 5
    assert "Item characteristic curves" in fig.axes[0].get_title()
    _check(fig)


def test_single_panels(sim_fit):
    _, f = sim_fit
    _check(plots.item_characteristic_curves(f, item_ids=list(f.items["item_id"][:2])))
    _check(plots.information_curve(f))


def test_parameter_histograms(sim_fit):
    _, f = sim_fit
    fig = plots.parameter_histograms(f)
    assert len(fig.axes) == (3 if f.model == "3pl" else 2)
    _check(fig)


def test_ability_distribution(sim_fit):
    _, f = sim_fit
    _check(plots.ability_distribution(f))


def test_recovery_scatter(sim_fit):
    sim, f = sim_fit
    truth = sim.items.astype({"item_id": str})
    merged = f.items.merge(truth, on="item_id", suffixes=("", "_true"))
    r = {"difficulty": 0.9, "discrimination": 0.7}
    fig = plots.recovery_scatter(merged, r)
    assert "r = 0.900" in fig.axes[0].get_title()
    _check(fig)
    empty = pd.DataFrame(columns=["difficulty", "difficulty_true", "discrimination",
                                  "discrimination_true"])  # fmt: skip
    _check(plots.recovery_scatter(empty))


def test_heldout_comparison():
    heldout = pd.DataFrame(
        {"log_loss": [0.63, 0.53, 0.52], "auc": [0.62, 0.79, np.nan]},
        index=pd.Index(["heuristic", "1pl", "2pl"], name="model"),
    )
    fig = plots.heldout_comparison(heldout)
    assert len(fig.axes[0].patches) == 3
    _check(fig)
