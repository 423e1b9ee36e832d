"""Per-cohort models (learnops.mlp.cohorts): with a cohort-specific signal the cohort's own model
beats the global model on that cohort, on held-out learners; small cohorts fall back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.mlp.cohorts import cohort_labels, train_cohort_models
from learnops.mlp.synthetic import synthetic_decisions


def _data(n: int, seed: int):
    """Cohort A follows the synthetic policy; cohort B takes the *next* action in ACTIONS order
    (a signal only a model that knows the cohort can learn: the features alone do not tell)."""
    df = synthetic_decisions(n, seed=seed)
    learner_no = pd.factorize(df["learner_hash"], sort=True)[0] % 2
    df["module"] = np.where(learner_no == 0, "A", "B")
    b = df["module"] == "B"
    idx = df.loc[b, "action"].map({a: i for i, a in enumerate(ACTIONS)})
    df.loc[b, "action"] = np.asarray(ACTIONS)[(idx.to_numpy() + 1) % len(ACTIONS)]
    return df


def test_cohort_model_beats_the_global_model_on_its_cohort():
    train_df, test_df = _data(4000, seed=1), _data(1500, seed=2)
    cm = train_cohort_models(train_df, MlpConfig(epochs=6, hidden=(32, 16)), seed=0,
                             cohort_by="module", min_rows=500)  # fmt: skip
    assert set(cm.models) == {"A", "B"}
    routed = cm.predict_batch(test_df)
    from learnops.mlp import predict_batch

    glob = predict_batch(cm.global_model, test_df)
    b = (test_df["module"] == "B").to_numpy()
    acc_cohort = (routed["action"].to_numpy()[b] == test_df["action"].to_numpy()[b]).mean()
    acc_global = (glob["action"].to_numpy()[b] == test_df["action"].to_numpy()[b]).mean()
    assert (routed["model"].to_numpy()[b] == "B").all()
    assert acc_cohort > acc_global + 0.15, (acc_cohort, acc_global)


def test_small_cohorts_fall_back_to_the_global_model():
    df = _data(1200, seed=3)
    cm = train_cohort_models(df, MlpConfig(epochs=1, hidden=(8,)), seed=0,
                             cohort_by="ability_band", min_rows=10_000)  # fmt: skip
    assert cm.models == {} and sum(cm.sizes.values()) == len(df)
    out = cm.predict_batch(df.head(50))
    assert (out["model"] == "global").all()
    labels = cohort_labels(df, "ability_band", cm.edges)
    assert set(labels) == {"low", "middle", "high"}
    with pytest.raises(LearnopsError, match="cohort_by must be"):
        cohort_labels(df, "country")
