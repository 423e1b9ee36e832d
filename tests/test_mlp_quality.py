"""Behaviour of the trained decision model against a known stochastic policy.

Uses ``learnops.data.simulate`` (the teacher policy of the synthetic pipeline) when importable,
otherwise the small softmax-linear policy of ``learnops.mlp.synthetic``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS, FEATURES
from learnops.mlp import expected_calibration_error, predict, predict_batch, train
from learnops.mlp.synthetic import synthetic_decisions

P_TRUE = [f"p_true_{a}" for a in ACTIONS]


def _known_policy_table(n: int, seed: int) -> pd.DataFrame:
    try:
        from learnops.data.simulate import simulate_decisions_table
    except ImportError:
        return synthetic_decisions(n, seed)
    return simulate_decisions_table(n, seed)


@pytest.fixture(scope="module")
def known_policy():
    df = _known_policy_table(20000, seed=7)
    learners = np.sort(df["learner_hash"].unique())
    rng = np.random.default_rng(0)
    held = set(rng.choice(learners, len(learners) // 4, replace=False))
    is_held = df["learner_hash"].isin(held)
    train_df = df[~is_held].reset_index(drop=True)
    test_df = df[is_held].reset_index(drop=True)
    result = train(train_df, MlpConfig(epochs=30, patience=6), seed=0)
    return result, test_df


@pytest.mark.slow
def test_accuracy_approaches_bayes_optimal(known_policy):
    result, test = known_policy
    pred = predict_batch(result.model, test)
    p_true = test[P_TRUE].to_numpy()
    chosen = pred[[f"p_{a}" for a in ACTIONS]].to_numpy().argmax(axis=1)
    bayes = p_true.max(axis=1).mean()
    # expected accuracy of the model's choices under the true policy (no label noise)
    expected_acc = p_true[np.arange(len(test)), chosen].mean()
    realized_acc = (pred["action"].to_numpy() == test["action"].to_numpy()).mean()
    assert expected_acc >= bayes - 0.02, (expected_acc, bayes)
    assert realized_acc >= bayes - 0.03, (realized_acc, bayes)


@pytest.mark.slow
def test_temperature_scaled_probabilities_are_calibrated(known_policy):
    result, test = known_policy
    pred = predict_batch(result.model, test)
    proba = pred[[f"p_{a}" for a in ACTIONS]].to_numpy()
    y = test["action"].map({a: i for i, a in enumerate(ACTIONS)}).to_numpy()
    assert expected_calibration_error(y, proba, n_bins=15) < 0.03
    np.testing.assert_allclose(pred["confidence"], proba.max(axis=1))


def test_more_consecutive_errors_never_lower_p_help():
    df = synthetic_decisions(6000, seed=3)
    result = train(df, MlpConfig(epochs=15, batch_size=64), seed=0)
    base_rows = df[list(FEATURES)].sample(40, random_state=1).to_dict("records")
    for row in base_rows:
        p = [
            predict(result.model, {**row, "consecutive_errors": k}).probabilities["provide_help"]
            for k in range(0, 9)
        ]
        assert np.all(np.diff(p) >= -1e-9), p
    assert p[-1] > p[0]
