"""classification_report against scikit-learn and a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.evaluation import classification_report
from learnops.evaluation.metrics import brier

P3 = np.array(
    [
        [0.70, 0.10, 0.10, 0.05, 0.05],  # true continue, predicted continue
        [0.20, 0.10, 0.60, 0.05, 0.05],  # true take_break, predicted take_break
        [0.30, 0.50, 0.10, 0.05, 0.05],  # true continue, predicted adjust_difficulty
    ]
)
Y3 = ["continue", "take_break", "continue"]


def test_hand_computed_three_rows():
    rep = classification_report(Y3, P3)
    assert rep["n"] == 3
    assert rep["accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    pc = rep["per_class"]
    assert pc["continue"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}, abs=1e-12
    )
    assert pc["adjust_difficulty"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert pc["take_break"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}, abs=1e-12
    )
    assert pc["provide_help"]["support"] == 0 and pc["change_activity"]["support"] == 0
    assert rep["macro"] == pytest.approx({"precision": 0.4, "recall": 0.3, "f1": 1 / 3}, abs=1e-12)
    assert rep["weighted"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 7 / 9}, abs=1e-12
    )
    assert rep["confusion_matrix"] == [
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert rep["confusion_matrix_normalized"][0] == [0.5, 0.5, 0.0, 0.0, 0.0]
    assert rep["confusion_matrix_normalized"][1] == [0.0] * 5  # zero support: zeros, not NaN
    expected_ll = -(math.log(0.7) + math.log(0.6) + math.log(0.3)) / 3
    assert rep["log_loss"] == pytest.approx(expected_ll, abs=1e-12)
    # row Brier terms: 0.115, 0.215, 0.755
    assert rep["brier"] == pytest.approx((0.115 + 0.215 + 0.755) / 3, abs=1e-12)


def test_matches_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    n, k = 700, len(ACTIONS)
    proba = rng.dirichlet(np.ones(k) * 0.7, size=n)
    y = rng.integers(0, k, size=n)
    rep = classification_report(y, proba)
    pred = proba.argmax(axis=1)
    idx = list(range(k))
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    for i, lab in enumerate(ACTIONS):
        got = rep["per_class"][lab]
        assert got["precision"] == pytest.approx(p[i], abs=1e-12)
        assert got["recall"] == pytest.approx(r[i], abs=1e-12)
        assert got["f1"] == pytest.approx(f[i], abs=1e-12)
        assert got["support"] == s[i]
    for avg in ("macro", "weighted"):
        assert rep[avg]["f1"] == pytest.approx(
            skm.f1_score(y, pred, labels=idx, average=avg), abs=1e-12
        )
        assert rep[avg]["precision"] == pytest.approx(
            skm.precision_score(y, pred, labels=idx, average=avg), abs=1e-12
        )
    assert np.array_equal(rep["confusion_matrix"], skm.confusion_matrix(y, pred, labels=idx))
    assert np.allclose(
        rep["confusion_matrix_normalized"],
        skm.confusion_matrix(y, pred, labels=idx, normalize="true"),
        atol=1e-12,
    )
    assert rep["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=idx), abs=1e-12)
    onehot = np.eye(k)[y]
    assert rep["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, 1)), abs=1e-12)
    # string labels give the same report as integer indices
    rep_str = classification_report(np.array(ACTIONS)[y], proba)
    assert rep_str == rep


def test_binary_brier_relation_to_sklearn():
    # with K=2 the multiclass Brier is twice sklearn's binary Brier score
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=300)
    y = rng.integers(0, 2, size=300)
    proba = np.column_stack([1 - p1, p1])
    assert brier(y, proba) == pytest.approx(2 * skm.brier_score_loss(y, p1), abs=1e-12)


def test_absent_labels_do_not_crash():
    proba = np.tile([0.6, 0.1, 0.1, 0.1, 0.1], (4, 1))
    rep = classification_report(["continue"] * 4, proba)
    assert rep["accuracy"] == 1.0
    assert rep["per_class"]["take_break"]["support"] == 0
    assert rep["macro"]["recall"] == pytest.approx(0.2)  # 1 for continue, 0 for four absent


def test_bad_inputs_raise_learnops_error():
    with pytest.raises(LearnopsError, match="unknown label"):
        classification_report(["continue", "dance"], np.tile([0.2] * 5, (2, 1)))
    with pytest.raises(LearnopsError, match="sum to 1"):
        classification_report([0, 1], np.tile([0.5] * 5, (2, 1)))
    with pytest.raises(LearnopsError, match="columns"):
        classification_report([0, 1], np.tile([0.5, 0.5], (2, 1)))
    with pytest.raises(LearnopsError, match="rows"):
        classification_report([0, 1, 2], np.tile([0.2] * 5, (2, 1)))
