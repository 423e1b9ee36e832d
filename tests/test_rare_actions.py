"""Rare actions: the paired model comparison (learnops.evaluation.compare) and logit adjustment."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS
from learnops.evaluation.compare import compare_models
from learnops.mlp import predict_batch, train
from learnops.mlp.metrics import encode_actions
from learnops.mlp.synthetic import synthetic_decisions
from learnops.mlp.training import log_prior


def test_compare_models_recall_and_paired_differences():
    rng = np.random.default_rng(0)
    n = 1200
    y = rng.integers(0, 5, n)
    learners = np.arange(n) // 6
    good = rng.dirichlet(np.ones(5), n)
    good[np.arange(n), y] += 0.5  # right more often than not
    noise = rng.dirichlet(np.ones(5), n)
    t = compare_models(y, {"ref": good, "same": good.copy(), "noise": noise}, learners, "ref",
                       ACTIONS, n_boot=200, seed=1)  # fmt: skip
    t = t.set_index(["model", "metric"])
    rec = recall_score(y, good.argmax(1), labels=range(5), average=None, zero_division=0)
    for k, a in enumerate(ACTIONS):
        assert t.loc[("ref", f"recall_{a}"), "estimate"] == pytest.approx(rec[k])
    same = t.loc["same"]
    assert (same["diff"] == 0).all() and (same["diff_ci_low"] == 0).all()
    f1 = t.loc[("noise", "macro_f1")]
    assert f1["diff"] < 0 and f1["diff_ci_high"] < 0  # a worse model is seen as worse
    lo, hi = t.loc[("ref", "accuracy"), ["ci_low", "ci_high"]]
    assert lo < t.loc[("ref", "accuracy"), "estimate"] < hi


def test_logit_adjustment_shifts_the_output_bias_by_the_log_prior():
    df = synthetic_decisions(800, seed=2)
    cfg = MlpConfig(epochs=2, hidden=(16,))
    a = train(df, cfg, seed=5)
    b = train(df, cfg.model_copy(update={"logit_adjustment": 1.0}), seed=5)
    prior = log_prior(encode_actions(df["action"])[a.split.train_index])
    shift = (a.model.net.out.bias - b.model.net.out.bias).detach().double().numpy()
    np.testing.assert_allclose(shift, prior, rtol=1e-5, atol=1e-6)
    # rarer actions gain: the adjusted model predicts the rarest action at least as often
    X = df.drop(columns=["action"])
    rare = ACTIONS[int(np.argmin(prior))]
    assert (predict_batch(b.model, X)["action"] == rare).sum() >= (
        predict_batch(a.model, X)["action"] == rare
    ).sum()


def _table(rows):
    import pandas as pd

    ref = {m: v for m, v in zip(["macro_f1", "ece", "recall_change_activity", "accuracy"],
                                rows[0][1:], strict=True)}  # fmt: skip
    out = []
    for model, *vals in rows:
        for metric, v in zip(ref, vals, strict=True):
            d = v - ref[metric]
            out.append(dict(model=model, metric=metric, estimate=v, ci_low=v - 0.02,
                            ci_high=v + 0.02, diff=d, diff_ci_low=d - 0.01,
                            diff_ci_high=d + 0.01))  # fmt: skip
    return pd.DataFrame(out)


def test_verdict_adopts_only_a_ci_backed_macro_f1_gain_within_the_ece_limit():
    from learnops.mlp.rare import _verdict

    stays = _table([("current", 0.77, 0.011, 0.48, 0.886),
                    ("logit_adjust_1", 0.72, 0.012, 0.69, 0.83),
                    ("class_weights", 0.68, 0.028, 0.63, 0.80)])  # fmt: skip
    best, text = _verdict(stays)
    assert best is None and text.startswith("The current loss stays")
    assert "recall > 0.5 with ECE ≤ 0.02: logit_adjust_1 (accuracy" in text
    wins = _table([("current", 0.77, 0.011, 0.48, 0.886), ("a", 0.80, 0.015, 0.55, 0.89),
                   ("b", 0.83, 0.030, 0.60, 0.89)])  # fmt: skip
    best, text = _verdict(wins)
    assert best == "a"  # b gains more macro-F1 but breaks the ECE limit
