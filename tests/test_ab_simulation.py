"""Monte Carlo checks of the learner-level analysis on clustered, decision-level data.

Each run simulates learners (randomized 50/50) with a learner random effect and several
decisions per learner. The runs are stacked into one table, aggregated with the same
``learner_table`` the analysis uses, and tested with the vectorized ``welch_test``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnops.ab.analysis import learner_table
from learnops.ab.stats import mde, power_two_sample, welch_test

RUNS = 2000
N_LEARNERS = 120  # per run, split 50/50
TAU, SIGMA = 0.10, 0.10  # learner random effect sd, decision noise sd


def _simulate(rng, effect, decisions):
    """Decision-level events for RUNS experiments: (events, learner run index)."""
    n = RUNS * N_LEARNERS
    run = np.repeat(np.arange(RUNS), N_LEARNERS)
    half = np.tile(np.arange(N_LEARNERS) % 2 == 0, (RUNS, 1))
    treat = rng.permuted(half, axis=1).ravel()  # random 50/50 assignment within each run
    u = rng.normal(0.5, TAU, n) + effect * treat
    k = decisions(n)
    learner = np.repeat(np.arange(n), k)
    y = u[learner] + rng.normal(0, SIGMA, learner.size)
    events = pd.DataFrame(
        {
            "learner_id": learner.astype(str),
            "group": np.where(treat[learner], "ml", "gpt4"),
            "engagement": y,
        }
    )
    return events, run


def _group_stats(frame, run_of, value):
    """Per-run, per-group mean / variance / count of ``value`` → arrays shaped (RUNS,)."""
    stats_ = frame.assign(run=run_of).groupby(["run", "group"])[value].agg(["mean", "var", "count"])
    t, c = stats_.xs("ml", level="group"), stats_.xs("gpt4", level="group")
    return t, c


def _rejections(t, c, alpha=0.05):
    res = welch_test(t["mean"], t["var"], t["count"], c["mean"], c["var"], c["count"], alpha)
    return res["p_value"] < alpha


@pytest.fixture(scope="module")
def aa_runs():
    rng = np.random.default_rng(20261123)
    events, run = _simulate(rng, 0.0, lambda n: rng.integers(1, 9, n))  # 1..8 decisions
    learners = learner_table(events, ["engagement"])
    learner_run = run[learners["learner_id"].astype(int).to_numpy()]
    lvl = _rejections(*_group_stats(learners, learner_run, "engagement"))
    row_run = run[events["learner_id"].astype(int).to_numpy()]
    naive = _rejections(*_group_stats(events, row_run, "engagement"))
    return lvl.mean(), naive.mean()


def test_aa_false_positive_rate_is_nominal_at_learner_level(aa_runs):
    fpr, _ = aa_runs
    print(f"A/A false-positive rate, learner level: {fpr:.4f} ({RUNS} runs)")
    assert 0.035 <= fpr <= 0.065


def test_aa_naive_row_level_test_inflates_false_positives(aa_runs):
    _, naive = aa_runs
    print(f"A/A false-positive rate, naive row level: {naive:.4f}")
    assert naive > 0.12


@pytest.mark.parametrize("target_power", [0.5, 0.8])
def test_known_effect_detected_at_predicted_power(target_power):
    rng = np.random.default_rng(int(target_power * 100))
    m = 4  # decisions per learner → sd of learner means
    sd = float(np.sqrt(TAU**2 + SIGMA**2 / m))
    n_per_group = N_LEARNERS // 2
    effect = mde(n_per_group, sd, alpha=0.05, power=target_power)
    predicted = power_two_sample(effect, n_per_group, sd, alpha=0.05)
    events, run = _simulate(rng, effect, lambda n: np.full(n, m))
    learners = learner_table(events, ["engagement"])
    learner_run = run[learners["learner_id"].astype(int).to_numpy()]
    observed = _rejections(*_group_stats(learners, learner_run, "engagement")).mean()
    print(f"power: predicted {predicted:.3f}, observed {observed:.3f} (effect {effect:.4f})")
    assert predicted == pytest.approx(target_power, abs=1e-9)
    assert abs(observed - predicted) <= 0.05
