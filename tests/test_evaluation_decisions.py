"""Decision analysis: thresholds (hand-computed and brute force), threshold choice, agreement
(Wilson vs statsmodels), outcome means with clustered/plain SEs (vs statsmodels OLS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from learnops.errors import LearnopsError
from learnops.evaluation import (
    add_confidence_bucket,
    agreement_table,
    outcomes_by,
    pick_threshold,
    threshold_analysis,
)

CONF = np.array([0.9, 0.8, 0.6, 0.4])
CORRECT = np.array([1, 1, 0, 1])
TS = np.array([0.0, 0.5, 0.7, 0.85, 0.95])


def test_threshold_analysis_hand_computed():
    t = threshold_analysis(CONF, CORRECT, TS)
    assert list(t["n_ml"]) == [4, 3, 2, 1, 0]
    assert list(t["ml_usage"]) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert list(t["ml_accuracy"][:4]) == pytest.approx([0.75, 2 / 3, 1.0, 1.0])
    assert np.isnan(t["ml_accuracy"].iloc[4])
    assert np.isnan(t["below_accuracy"].iloc[0])
    assert list(t["below_accuracy"][1:]) == pytest.approx([1.0, 0.5, 2 / 3, 0.75])
    assert (t["overall_accuracy"] == 0.75).all()
    # with a fallback teacher of accuracy 0.5: usage*ml + (1-usage)*0.5
    tf = threshold_analysis(CONF, CORRECT, TS, fallback_accuracy=0.5)
    assert list(tf["overall_accuracy"]) == pytest.approx(
        [0.75, 0.75 * 2 / 3 + 0.125, 0.75, 0.25 + 0.375, 0.5]
    )
    # confidence exactly at the threshold counts as ML
    assert threshold_analysis([0.6], [1], [0.6])["n_ml"].iloc[0] == 1


def test_threshold_analysis_matches_brute_force():
    rng = np.random.default_rng(0)
    conf = np.round(rng.uniform(0.2, 1, 1000), 2)  # ties on the grid
    correct = (rng.uniform(size=1000) < conf).astype(int)
    t = threshold_analysis(conf, correct)
    assert len(t) == 101
    for _, row in t.iterrows():
        used = conf >= row["threshold"]
        assert row["n_ml"] == used.sum()
        if used.any():
            assert row["ml_accuracy"] == pytest.approx(correct[used].mean(), abs=1e-12)


def test_pick_threshold():
    t = threshold_analysis(CONF, CORRECT, TS)
    ok = pick_threshold(t, min_usage=0.5, min_accuracy=0.85)
    assert ok.threshold == 0.7 and ok.ml_usage == 0.5 and ok.ml_accuracy == 1.0
    low = pick_threshold(t, min_usage=0.7, min_accuracy=0.85)
    assert low.threshold is None and "0.750" in low.reason and "accuracy" in low.reason
    easy = pick_threshold(t, min_usage=0.7, min_accuracy=0.7)
    assert easy.threshold == 0.0
    none = pick_threshold(threshold_analysis(CONF, CORRECT, [0.95]), 0.7, 0.85)
    assert none.threshold is None and "usage" in none.reason
    assert set(ok.to_dict()) == {"threshold", "ml_usage", "ml_accuracy", "reason"}


def test_agreement_table_by_action_and_bucket():
    df = pd.DataFrame(
        {
            "action": ["continue"] * 4 + ["take_break"] * 2,
            "model_action": [
                "continue",
                "continue",
                "continue",
                "take_break",
                "take_break",
                "continue",
            ],
            "confidence": [0.95, 0.85, 0.55, 0.45, 0.9, 0.3],
        }
    )
    t = agreement_table(df, "model_action", "action").set_index("action")
    assert t.loc["continue", "n"] == 4 and t.loc["continue", "agree"] == 3
    assert t.loc["continue", "agreement"] == pytest.approx(0.75)
    assert t.loc["take_break", "agreement"] == pytest.approx(0.5)
    lo, hi = proportion_confint(3, 4, method="wilson")
    assert t.loc["continue", "ci_low"] == pytest.approx(lo, abs=1e-12)
    assert t.loc["continue", "ci_high"] == pytest.approx(hi, abs=1e-12)
    overall = agreement_table(df, "model_action", "action", by=[])
    assert overall["agreement"].iloc[0] == pytest.approx(4 / 6)
    b = agreement_table(add_confidence_bucket(df), "model_action", "action", by="confidence_bucket")
    assert b["n"].sum() == 6
    top = b[b["confidence_bucket"].map(lambda iv: iv.right == 1.0)]
    assert top["agreement"].iloc[0] == 1.0  # rows .95 and .9
    with pytest.raises(LearnopsError, match="missing column"):
        agreement_table(df, "nope", "action")


def _decisions(rng: np.random.Generator, n_learners: int = 60, per: int = 8) -> pd.DataFrame:
    learner = np.repeat(np.arange(n_learners), per)
    u = rng.normal(0, 0.1, n_learners)[learner]
    n = learner.size
    return pd.DataFrame(
        {
            "learner_hash": [f"h{i}" for i in learner],
            "action": rng.choice(["continue", "take_break"], n),
            "decided_by": rng.choice(["ml", "llm"], n),
            "next_accuracy": np.clip(0.6 + u + rng.normal(0, 0.1, n), 0, 1),
            "next_engagement": rng.uniform(size=n),
            "session_completed": rng.uniform(size=n) < 0.7,
            "total_session_time_ms": rng.gamma(2.0, 6e5, n),
        }
    )


def test_outcomes_by_matches_statsmodels():
    df = _decisions(np.random.default_rng(3))
    df.loc[df.index[:5], "next_accuracy"] = np.nan  # outcome not yet known: dropped
    res = outcomes_by(df, by=["decided_by"])
    assert set(res["metric"]) == {
        "next_accuracy",
        "next_engagement",
        "session_completed",
        "total_session_time_ms",
    }
    plain = outcomes_by(df, by="decided_by", cluster_col=None)
    for who in ("ml", "llm"):
        part = df[df["decided_by"] == who]
        for metric in ("next_accuracy", "session_completed"):
            sub = part[part[metric].notna()]
            y = sub[metric].astype(float).to_numpy()
            fit = sm.OLS(y, np.ones_like(y)).fit(
                cov_type="cluster", cov_kwds={"groups": pd.factorize(sub["learner_hash"])[0]}
            )
            row = res[(res["decided_by"] == who) & (res["metric"] == metric)].iloc[0]
            assert row["n"] == len(y)
            assert row["mean"] == pytest.approx(y.mean(), abs=1e-12)
            assert row["se"] == pytest.approx(fit.bse[0], rel=1e-10)
            assert row["ci_low"] == pytest.approx(fit.conf_int()[0][0], rel=1e-10)
            ols = sm.OLS(y, np.ones_like(y)).fit()
            prow = plain[(plain["decided_by"] == who) & (plain["metric"] == metric)].iloc[0]
            assert prow["se"] == pytest.approx(ols.bse[0], rel=1e-10)


def test_outcomes_clustered_se_exceeds_plain_when_learners_correlate():
    rng = np.random.default_rng(9)
    df = _decisions(rng, n_learners=200, per=10)
    c = outcomes_by(df, by=[], metrics=["next_accuracy"]).iloc[0]
    p = outcomes_by(df, by=[], metrics=["next_accuracy"], cluster_col=None).iloc[0]
    # ICC = .01/(.01+.01) = .5 -> design effect 1 + 9*.5 = 5.5 -> SE ratio ~ 2.3
    assert 1.8 < c["se"] / p["se"] < 2.9
