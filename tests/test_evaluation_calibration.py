"""ECE / MCE / reliability tables: hand-computed cases, sklearn, and synthetic known truth."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from learnops.errors import LearnopsError
from learnops.evaluation import (
    binary_calibration_table,
    ece,
    ece_binary,
    mce,
    reliability_table,
)

LABELS = ("a", "b", "c")


def test_hand_computed_four_rows_multiclass():
    proba = np.array(
        [
            [0.60, 0.30, 0.10],  # conf .60, correct
            [0.20, 0.70, 0.10],  # conf .70, wrong (true c)
            [0.10, 0.10, 0.80],  # conf .80, correct
            [0.05, 0.95, 0.00],  # conf .95, correct
        ]
    )
    y = ["a", "c", "c", "b"]
    table = reliability_table(y, proba, n_bins=4, labels=LABELS)
    assert list(table["count"]) == [0, 0, 2, 2]
    assert table.loc[2, "mean_confidence"] == pytest.approx(0.65)
    assert table.loc[2, "accuracy"] == pytest.approx(0.5)
    assert table.loc[3, "mean_confidence"] == pytest.approx(0.875)
    assert table.loc[3, "gap"] == pytest.approx(0.125)
    assert np.isnan(table.loc[0, "accuracy"])
    # ECE = .5*|.5-.65| + .5*|1-.875| ; MCE = .15
    assert ece(y, proba, n_bins=4, labels=LABELS) == pytest.approx(0.1375, abs=1e-12)
    assert mce(y, proba, n_bins=4, labels=LABELS) == pytest.approx(0.15, abs=1e-12)


def test_hand_computed_four_rows_binary():
    p = [0.2, 0.4, 0.7, 0.8]
    y = [0, 1, 1, 1]
    t = binary_calibration_table(y, p, n_bins=2)
    assert list(t["count"]) == [2, 2]
    assert list(t["gap"]) == pytest.approx([0.2, 0.25])
    assert ece_binary(y, p, n_bins=2) == pytest.approx(0.225, abs=1e-12)


def test_bins_are_right_closed():
    t = binary_calibration_table([1, 0, 1], [0.0, 0.5, 0.5000001], n_bins=2)
    assert list(t["count"]) == [2, 1]


def test_binary_table_matches_sklearn_calibration_curve():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p**1.3).astype(int)
    for strategy in ("uniform", "quantile"):
        t = binary_calibration_table(y, p, n_bins=10, strategy=strategy)
        t = t[t["count"] > 0]
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
        assert np.allclose(t["accuracy"], prob_true, atol=1e-12)
        assert np.allclose(t["mean_confidence"], prob_pred, atol=1e-12)


def test_quantile_bins_have_equal_counts():
    rng = np.random.default_rng(2)
    p = rng.beta(5, 2, size=10_000)
    t = binary_calibration_table(rng.integers(0, 2, 10_000), p, n_bins=10, strategy="quantile")
    assert len(t) == 10
    assert t["count"].min() >= 990 and t["count"].max() <= 1010


def test_perfectly_calibrated_predictor_has_near_zero_ece():
    rng = np.random.default_rng(4)
    n = 200_000
    proba = rng.dirichlet(np.ones(5) * 0.5, size=n)
    cum = proba.cumsum(axis=1)
    y = (rng.uniform(size=(n, 1)) > cum).sum(axis=1).clip(max=4)  # y ~ Categorical(proba)
    for strategy in ("uniform", "quantile"):
        assert ece(y, proba, n_bins=15, strategy=strategy) < 0.01
    p = rng.uniform(size=n)
    yb = (rng.uniform(size=n) < p).astype(int)
    assert ece_binary(yb, p, n_bins=15) < 0.01


def test_overconfident_predictor_has_known_ece():
    rng = np.random.default_rng(5)
    n = 100_000
    proba = np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (n, 1))
    correct = rng.uniform(size=n) < 0.6
    y = np.where(correct, 0, rng.integers(1, 5, size=n))
    assert ece(y, proba) == pytest.approx(0.3, abs=0.01)
    assert mce(y, proba) == pytest.approx(0.3, abs=0.01)
    assert ece_binary(correct.astype(int), np.full(n, 0.9)) == pytest.approx(0.3, abs=0.01)
    # and a well-calibrated constant predictor is not flagged
    assert ece_binary(correct.astype(int), np.full(n, 0.6)) < 0.01


def test_calibration_input_errors():
    with pytest.raises(LearnopsError, match="strategy"):
        ece_binary([0, 1], [0.2, 0.8], strategy="kmeans")  # type: ignore[arg-type]
    with pytest.raises(LearnopsError, match="0/1"):
        ece_binary([0, 2], [0.2, 0.8])
    with pytest.raises(LearnopsError, match=r"\[0, 1\]"):
        ece_binary([0, 1], [0.2, 1.8])
