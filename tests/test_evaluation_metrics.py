"""The metric definitions against scikit-learn and hand-computed cases; the one comparison rule,
and that the deployment gates and the evaluation's recommendation give the same verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from learnops.config import RegisterConfig, Targets
from learnops.evaluation import metrics as m
from learnops.evaluation.report import deployment_recommendation
from learnops.io import jsonable
from learnops.lifecycle.gates import irt_gate, mlp_gate

K = 5


def _multiclass(seed: int = 0, n: int = 800):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(K) * 0.7, size=n)
    y = (rng.uniform(size=(n, 1)) > proba.cumsum(axis=1)).sum(axis=1).clip(max=K - 1)
    return y, proba


def _binary(seed: int = 0, n: int = 1500):
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, size=n)
    return (rng.uniform(size=n) < p).astype(int), p


def test_multiclass_metrics_match_sklearn():
    y, proba = _multiclass()
    pred = proba.argmax(axis=1)
    idx = list(range(K))
    assert m.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m.macro_f1(y, pred, K) == pytest.approx(
        skm.f1_score(y, pred, labels=idx, average="macro", zero_division=0), abs=1e-12
    )
    assert m.log_loss(y, proba) == pytest.approx(skm.log_loss(y, proba, labels=idx), abs=1e-12)
    assert m.brier(y, proba) == pytest.approx(
        skm.brier_score_loss(y, proba, labels=idx, scale_by_half=False), abs=1e-12
    )
    d = m.classification_metrics(y, proba, n_bins=15)
    assert d == {
        "accuracy": m.accuracy(y, pred),
        "nll": m.log_loss(y, proba),
        "ece": m.ece(y, proba, 15),
        "brier": m.brier(y, proba),
        "macro_f1": m.macro_f1(y, pred, K),
    }
    table = m.per_class(y, pred, K)
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    assert np.allclose(table["precision"], p) and np.allclose(table["recall"], r)
    assert np.allclose(table["f1"], f) and list(table["support"]) == list(s)
    assert np.array_equal(m.confusion(y, pred, K), skm.confusion_matrix(y, pred, labels=idx))


def test_log_loss_clips_like_sklearn():
    y = np.array([0, 1])
    proba = np.array([[1.0, 0.0, 0, 0, 0], [1.0, 0.0, 0, 0, 0]])  # a certain, wrong row
    assert m.log_loss(y, proba) == pytest.approx(
        skm.log_loss(y, proba, labels=list(range(K))), rel=1e-12
    )
    assert math.isfinite(m.log_loss(y, proba))


def test_macro_f1_counts_absent_classes_as_zero():
    # continue (f1 2/3), adjust_difficulty (predicted, never true: 0), take_break (1), 2 absent
    y, pred = np.array([0, 2, 0]), np.array([0, 2, 1])
    assert m.macro_f1(y, pred, K) == pytest.approx((2 / 3 + 0 + 1) / K, abs=1e-12)


def test_binary_metrics_match_sklearn():
    y, p = _binary()
    hard = (p >= 0.5).astype(int)
    d = m.binary_metrics(y, p)
    assert d["accuracy"] == pytest.approx(skm.accuracy_score(y, hard), abs=1e-12)
    assert d["precision"] == pytest.approx(skm.precision_score(y, hard), abs=1e-12)
    assert d["recall"] == pytest.approx(skm.recall_score(y, hard), abs=1e-12)
    assert d["f1"] == pytest.approx(skm.f1_score(y, hard), abs=1e-12)
    assert d["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert d["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert d["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert d["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), abs=1e-12)
    assert d["mae"] == pytest.approx(skm.mean_absolute_error(y, p), abs=1e-12)
    assert m.binary_log_loss(y, p) == d["log_loss"] and m.auc(y, p) == d["auc"]


def test_auc_with_ties_matches_sklearn_and_is_nan_with_one_class():
    y = np.array([0, 1, 1, 0, 1, 0, 1])
    p = np.array([0.2, 0.2, 0.7, 0.7, 0.9, 0.1, 0.5])
    assert m.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert math.isnan(m.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    d = m.binary_metrics([1, 1], [0.7, 0.9])
    assert math.isnan(d["auc"])
    assert json.loads(json.dumps(jsonable(d), allow_nan=False))["auc"] is None


def test_ece_hand_computed():
    # four rows, 4 equal-width bins: confidences .60 (right), .70 (wrong) in (.5, .75];
    # .80, .95 (both right) in (.75, 1]. ECE = .5·|.5 − .65| + .5·|1 − .875| = .1375
    proba = np.array(
        [[0.60, 0.30, 0.10], [0.20, 0.70, 0.10], [0.10, 0.10, 0.80], [0.05, 0.95, 0.00]]
    )
    y = np.array([0, 2, 2, 1])
    assert m.ece(y, proba, n_bins=4) == pytest.approx(0.1375, abs=1e-12)
    assert m.mce_of_table(m.calibration_table(*m.top_label(y, proba), 4)) == pytest.approx(0.15)
    # binary: bins (0, .5] holds p .2, .4 with y 0, 1: |.5 − .3| = .2; (.5, 1]: |1 − .75| = .25
    assert m.ece_binary([0, 1, 1, 1], [0.2, 0.4, 0.7, 0.8], n_bins=2) == pytest.approx(0.225)
    # the bin count matters: one bin is |accuracy − mean confidence| overall
    assert m.ece(y, proba, n_bins=1) == pytest.approx(abs(0.75 - 0.7625), abs=1e-12)


def test_no_rows_give_nan_and_nan_becomes_null_in_json():
    d = m.classification_metrics(np.array([], dtype=int), np.zeros((0, K)))
    assert all(math.isnan(v) for v in d.values())
    assert jsonable(d) == {k: None for k in d}


@pytest.mark.parametrize(
    "value, target, direction, passed",
    [
        (0.85, 0.85, "higher", True),
        (0.8499, 0.85, "higher", False),
        (0.10, 0.10, "lower", True),
        (0.1001, 0.10, "lower", False),
        (float("nan"), 0.5, "higher", False),
        (None, 0.5, "lower", False),
        (0.9, None, "higher", False),
        (0.9, float("nan"), "higher", False),
    ],
)
def test_meets(value, target, direction, passed):
    assert m.meets(value, target, direction) is passed


def test_check_reasons_are_readable():
    c = m.check("accuracy", float("nan"), 0.85, "higher")
    assert not c["passed"] and c["value"] is None and "undefined" in c["reason"]
    assert "not measured" in m.check("ece", None, 0.1, "lower")["reason"]
    assert "above the maximum 0.1" in m.check("ece", 0.2, 0.1, "lower")["reason"]
    with pytest.raises(Exception, match="direction"):
        m.check("x", 1.0, 1.0, "up")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "accuracy, ece",
    [(0.85, 0.10), (0.8499, 0.05), (0.90, 0.1001), (0.90, float("nan")), (float("nan"), 0.01)],
)
def test_gate_and_recommendation_agree(accuracy, ece):
    targets = Targets(accuracy=0.85, calibration_error=0.10)
    cfg = RegisterConfig(irt_min_accuracy=0.85)
    gate = mlp_gate({"accuracy": accuracy, "ece": ece}, None, cfg, targets)
    rec = deployment_recommendation(
        {"accuracy": accuracy, "ece": ece}, {"accuracy": 0.85, "calibration_error": 0.10}
    )
    assert gate.deploy is rec["deploy"]
    assert [c["passed"] for c in gate.checks] == [c["passed"] for c in rec["checks"]]
    # the IRT gate's minimum accuracy follows the same rule
    irt = irt_gate({"accuracy": accuracy, "auc": 0.7}, None, cfg)
    assert irt.deploy is m.meets(accuracy, 0.85, "higher") is rec["checks"][0]["passed"]


def test_relative_gate_respects_the_metric_direction():
    cfg = RegisterConfig(mlp_metric="nll", mlp_min_improvement=0.1)
    targets = Targets(accuracy=0.5, calibration_error=0.5)
    good = mlp_gate({"accuracy": 0.9, "ece": 0.01, "nll": 0.89}, {"nll": 1.0}, cfg, targets)
    bad = mlp_gate({"accuracy": 0.9, "ece": 0.01, "nll": 0.95}, {"nll": 1.0}, cfg, targets)
    assert good.deploy and not bad.deploy
    assert any("does not beat production" in r for r in bad.reasons)
