"""Binary (IRT P(correct)) metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from learnops.evaluation import binary_metrics, by_group, ece_binary


def _data(seed: int = 0, n: int = 2000):
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, p


def test_binary_metrics_match_sklearn():
    y, p = _data()
    m = binary_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), abs=1e-12)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p), abs=1e-12)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert m["ece"] == pytest.approx(ece_binary(y, p, n_bins=10), abs=1e-12)
    assert m["ece"] < 0.05  # y drawn from p: calibrated
    assert m["n"] == 2000 and m["base_rate"] == pytest.approx(y.mean())


def test_by_group_breakdown():
    y, p = _data(1, 3000)
    groups = np.array(["algebra", "geometry", "stats"])[np.arange(3000) % 3]
    y[groups == "stats"] = 1  # one class only: AUC undefined
    t = by_group(y, p, groups)
    assert list(t.index) == ["algebra", "geometry", "stats"]
    for g in ("algebra", "geometry"):
        mask = groups == g
        assert t.loc[g, "n"] == mask.sum()
        assert t.loc[g, "auc"] == pytest.approx(skm.roc_auc_score(y[mask], p[mask]), abs=1e-12)
        assert t.loc[g, "brier"] == pytest.approx(skm.brier_score_loss(y[mask], p[mask]), abs=1e-12)
    assert np.isnan(t.loc["stats", "auc"])
    assert t.loc["stats", "log_loss"] == pytest.approx(
        skm.log_loss(y[groups == "stats"], p[groups == "stats"], labels=[0, 1]), abs=1e-12
    )
