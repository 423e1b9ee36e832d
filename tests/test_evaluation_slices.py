"""Cohort slices (learnops.evaluation.slices): partitions, weighted metrics against sklearn and the
metrics module, the shared learner bootstrap and the gap flag on data with a known gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from learnops.evaluation.metrics import ece
from learnops.evaluation.slices import (
    ability_bands,
    hour_bands,
    returning,
    slice_report,
    weighted_metrics,
)
from learnops.stages.evaluate import decision_modules, slice_dimensions


def _data(n_learners=300, per=8, seed=0, gap=0.0):
    """Learners with a fixed 'group' (A/B); the model is right with prob 0.7 (+gap in A)."""
    rng = np.random.default_rng(seed)
    learner = np.repeat(np.arange(n_learners), per)
    group = np.where(learner % 2 == 0, "A", "B")
    n = len(learner)
    y = rng.integers(0, 5, n)
    p_right = 0.7 + np.where(group == "A", gap, 0.0)
    right = rng.random(n) < p_right
    pred = np.where(right, y, (y + rng.integers(1, 5, n)) % 5)
    proba = rng.dirichlet(np.ones(5), n) * 0.4
    proba[np.arange(n), pred] += 0.6
    df = pd.DataFrame(
        {
            "learner_hash": learner.astype(str),
            "ability": rng.normal(size=n),
            "sessions_completed": rng.integers(0, 4, n),
            "hour_of_day": rng.integers(0, 24, n),
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        }
    )
    return df, y, proba, group


def test_every_dimension_partitions_the_rows():
    df, y, proba, _ = _data()
    responses = pd.DataFrame(
        {
            "learner_hash": df["learner_hash"].iloc[::3],
            "timestamp": df["timestamp"].iloc[::3] - pd.Timedelta(seconds=1),
            "module": np.resize(["m1", "m2", "m3"], len(df.iloc[::3])),
        }
    )
    dims = slice_dimensions(df, responses)
    assert set(dims) == {"ability_band", "learner", "module", "hour"}
    for name, labels in dims.items():
        assert len(labels) == len(df) and labels.notna().all(), name
    rep = slice_report(y, proba, df["learner_hash"], dims, 0.6, n_boot=0)
    counts = rep.table.drop_duplicates(["dimension", "slice"]).groupby("dimension")["n"].sum()
    assert (counts == len(df)).all()
    # ability terciles hold a third each; hour bands and new/returning follow their definitions
    thirds = ability_bands(df["ability"]).value_counts()
    assert thirds.between(len(df) / 3 - 1, len(df) / 3 + 1).all()
    assert set(returning(df["sessions_completed"])[df["sessions_completed"] == 0]) == {"new"}
    assert hour_bands(pd.Series([0, 11, 12, 17, 18, 23])).tolist() == [
        "00-11", "00-11", "12-17", "12-17", "18-23", "18-23",
    ]  # fmt: skip


def test_module_is_the_latest_response_at_or_before_the_decision():
    t = pd.Timestamp("2026-01-01", tz="UTC")
    test = pd.DataFrame(
        {"learner_hash": ["a", "a", "b", "c"], "timestamp": [t, t + pd.Timedelta("1h"), t, t]}
    )
    responses = pd.DataFrame(
        {
            "learner_hash": ["a", "a", "b", "b"],
            "timestamp": [t - pd.Timedelta("1m"), t + pd.Timedelta("30m"), t]
            + [t + pd.Timedelta("1m")],
            "module": ["m1", "m2", "m3", "m4"],
        }
    )
    assert decision_modules(test, responses).tolist() == ["m1", "m2", "m3", "unknown"]
    assert decision_modules(test, None).tolist() == ["unknown"] * 4


def test_unit_weights_match_sklearn_and_the_metrics_module():
    df, y, proba, _ = _data(n_learners=50)
    out = {"o": np.where(np.arange(len(y)) % 7 == 0, np.nan, np.arange(len(y)) % 3)}
    m = weighted_metrics(y, proba, np.ones(len(y)), 0.7, out, n_bins=15)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, pred, labels=range(5), average="macro", zero_division=0)
    )
    assert m["ece"] == pytest.approx(ece(y, proba, 15))
    assert m["ml_usage"] == pytest.approx((proba.max(1) >= 0.7).mean())
    assert m["o"] == pytest.approx(np.nanmean(out["o"]))
    # integer weights = rows repeated
    w = np.arange(len(y)) % 3
    rep = np.repeat(np.arange(len(y)), w)
    m2 = weighted_metrics(y, proba, w.astype(float), 0.7, {}, 15)
    assert m2["macro_f1"] == pytest.approx(
        f1_score(y[rep], pred[rep], labels=range(5), average="macro", zero_division=0)
    )
    assert m2["ece"] == pytest.approx(ece(y[rep], proba[rep], 15))


def test_a_true_gap_is_flagged_and_no_gap_rarely_is():
    df, y, proba, group = _data(gap=0.15, seed=1)
    rep = slice_report(y, proba, df["learner_hash"], {"group": group}, 0.6, n_boot=200, seed=3)
    g = rep.gaps.set_index("metric").loc["accuracy"]
    assert (g["high"], g["low"], bool(g["flagged"])) == ("A", "B", True)
    assert g["ci_low"] < 0.15 < g["ci_high"]
    flagged = []
    for seed in range(20):
        df, y, proba, group = _data(gap=0.0, seed=100 + seed, n_learners=120)
        r = slice_report(y, proba, df["learner_hash"], {"group": group}, 0.6, n_boot=100, seed=1)
        flagged.append(bool(r.gaps.set_index("metric").loc["accuracy", "flagged"]))
    assert sum(flagged) <= 4  # nominal 5% of 20 = 1; generous for bootstrap noise
    doc = rep.to_metrics()
    assert doc["group"]["A"]["accuracy"]["estimate"] > doc["group"]["B"]["accuracy"]["estimate"]
    assert doc["gaps"]["group"]["accuracy"]["flagged"] is True
    assert list(rep.wide().columns[:2]) == ["decisions", "learners"]
