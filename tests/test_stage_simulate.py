"""The simulate stage: store, truth files, and the check tables of notebook 00 against
independent computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params
from scipy import stats

SIMULATE = {"n_learners": 80, "n_items": 20}  # TINY's modules and days


@pytest.fixture(scope="module")
def result(tmp_path_factory, own_store):
    from learnops.stages import simulate

    root = tmp_path_factory.mktemp("simulate_stage")
    params = tiny_params(root, simulate=SIMULATE, export=None)
    return root, params, simulate.run(params)


def test_outputs_are_written(result):
    from learnops.data.store import Decision, EventStore, Response

    root, params, res = result
    meta = json.loads((root / "data/raw/simulate.json").read_text())
    assert meta["n_decisions"] == len(res.sim.decisions) and meta["fingerprint"] == res.fingerprint
    assert (root / "data/raw/truth/items.csv").is_file()
    store = EventStore(params.db_url)
    try:
        assert store.count(Response) == len(res.sim.responses)
        assert store.count(Decision) == len(res.sim.decisions)
    finally:
        store.dispose()
    timings = json.loads((root / "reports/timings/simulate.json").read_text())
    assert timings["seconds"] >= 0
    assert not (root / "reports/metrics/simulate.json").exists()


def test_summary(result):
    _, params, res = result
    s = res.summary["value"]
    assert s["learners"] == params.simulate.n_learners and s["items"] == params.simulate.n_items
    assert s["responses"] == len(res.sim.responses) and s["modules"] == 3
    probs = res.sim.decision_truth.filter(like="p_true_").to_numpy()
    bayes = probs.max(axis=1).mean()
    assert s["Bayes-optimal imitation accuracy"] == pytest.approx(bayes, abs=1e-4)


def test_calibration_matches_an_independent_binning(result):
    _, _, res = result
    t = res.sim.response_truth.merge(res.sim.responses, on="response_id")
    bins = pd.cut(t["p_correct"], np.linspace(0, 1, 11), right=False)
    ref = t.groupby(bins, observed=True).agg(p=("p_correct", "mean"), y=("correct", "mean"))
    cal = res.calibration
    assert cal["n"].sum() == len(t)
    np.testing.assert_allclose(cal["p_true"], ref["p"], rtol=1e-12)
    np.testing.assert_allclose(cal["observed"], ref["y"], rtol=1e-12)
    p, n = ref["p"].to_numpy(), cal["n"].to_numpy()
    np.testing.assert_allclose(cal["se"], np.sqrt(p * (1 - p) / n), rtol=1e-12)
    # the simulated answers really follow the truth: chi-square over the bins
    z2 = ((cal["observed"] - cal["p_true"]) / cal["se"]) ** 2
    assert stats.chi2.sf(z2.sum(), df=len(cal)) > 0.001


def test_action_table(result):
    _, _, res = result
    a = res.actions
    assert a["decisions"].sum() == len(res.sim.decisions)
    assert a["share"].sum() == pytest.approx(1.0)
    assert a["expected_share"].sum() == pytest.approx(1.0)
    counts = res.sim.decisions["action"].value_counts()
    assert a.loc["continue", "decisions"] == counts["continue"]
    expected = res.sim.decision_truth["p_true_provide_help"].mean()
    assert a.loc["provide_help", "expected_share"] == pytest.approx(expected)


def test_engagement_by_arm_matches_scipy(result):
    _, params, res = result
    d = res.sim.decisions
    ml = d[d["ab_group"] == "ml"].groupby("learner_hash")["next_engagement"].mean()
    row = res.engagement_by_arm.loc["ml"]
    assert row["learners"] == len(ml) and row["mean_next_engagement"] == pytest.approx(ml.mean())
    assert row["se"] == pytest.approx(stats.sem(ml))
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * 1.96 * stats.sem(ml))
    assert row["planted_effect"] == params.simulate.ab_effect["ml"]
    before = res.engagement_by_arm.loc["before experiment"]
    assert before["decisions"] == d["ab_group"].isna().sum() and np.isnan(before["planted_effect"])
    assert list(res.engagement_by_arm.index[:3]) == list(params.simulate.ab_groups)
