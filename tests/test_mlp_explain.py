"""Integrated-gradients attributions of the decision model (learnops.mlp.explain).

References: a model with no hidden layer, whose IG has a closed form (weight × standardized
distance from the baseline, clip included); Captum's quadrature for the ReLU network, which the
exact piecewise-linear integral must match as Captum's step count grows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from learnops.contracts import ACTIONS, FEATURES
from learnops.errors import LearnopsError
from learnops.mlp import explain, explain_batch, predict, predict_batch
from learnops.mlp.explain import ATTR_PREFIX, captum_attributions, exact_attributions
from learnops.mlp.features import FeatureStats
from learnops.mlp.model import DecisionNet, MlpModel
from learnops.mlp.synthetic import synthetic_decisions


@pytest.fixture(scope="module")
def data():
    return synthetic_decisions(1500, seed=11)


@pytest.fixture(scope="module")
def model(data):
    """A randomly initialised network on the data's feature statistics (IG's properties do not
    depend on training, and this keeps the tests fast)."""
    torch.manual_seed(3)
    net = DecisionNet(hidden=(32, 16), dropout=0.0)
    return MlpModel(net=net, stats=FeatureStats.fit(_x(data, None)), temperature=1.3)


def _x(data, n):
    return data[list(FEATURES)].to_numpy(float)[:n]


def test_completeness_on_every_row(model, data):
    """Attributions sum to logit(x) − logit(training means), far inside the 1% acceptance."""
    out = explain_batch(model, data.head(400))
    diff = out["logit"] - out["baseline_logit"]
    assert (out["delta"].abs() <= 0.01 * diff.abs()).all()
    assert out["delta"].abs().max() < 1e-9
    # the explained logit is the served model's: same action, and logit = the numpy fast path
    pred = predict_batch(model, data.head(400))
    assert (out["action"] == pred["action"]).all()
    raw = np.array([model.raw_outputs_np(x.copy())[: len(ACTIONS)] for x in _x(data, 400)])
    np.testing.assert_allclose(out["logit"], raw.max(axis=1), rtol=0, atol=1e-9)
    base = model.raw_outputs_np(model.stats.mean.copy())[: len(ACTIONS)]
    np.testing.assert_allclose(out["baseline_logit"], base[raw.argmax(axis=1)], atol=1e-9)


def test_deterministic(model, data):
    a = explain_batch(model, data.head(50))
    b = explain_batch(model, data.head(50))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    row = data.iloc[7][list(FEATURES)].to_dict()
    assert explain(model, row) == explain(model, row)
    # one row alone and inside a batch: the same numbers
    single = explain(model, row)
    np.testing.assert_array_equal(
        [single.attributions[f] for f in FEATURES],
        a.loc[7, [ATTR_PREFIX + f for f in FEATURES]].to_numpy(float),
    )


def test_linear_model_matches_the_closed_form():
    """No hidden layer: logit_k = W_k·clip(z) + c, so IG_j = W_kj·clip(z_j) exactly."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = DecisionNet(hidden=(), dropout=0.0)
    mean, std = rng.normal(size=18), rng.uniform(0.5, 2.0, size=18)
    m = MlpModel(net=net, stats=FeatureStats(mean=mean, std=std, clip=2.0))
    X = mean + std * rng.normal(scale=1.5, size=(40, 18))  # many inputs beyond the ±2 clip
    W = net.out.weight.detach().double().numpy()
    attr, t, fx, fb = exact_attributions(m, X)
    z = np.clip((X - mean) / std, -2.0, 2.0)
    np.testing.assert_allclose(attr, W[t] * z, rtol=1e-10, atol=1e-12)


def test_exact_agrees_with_captum(model, data):
    X = _x(data, 6)
    exact, t, fx, fb = exact_attributions(model, X)
    errs = []
    for steps in (64, 512):
        cap, t2, _, _ = captum_attributions(model, X, n_steps=steps)
        assert (t2 == t).all()
        errs.append(np.abs(cap - exact).max())
    scale = np.abs(exact).max()
    assert errs[1] < 0.01 * scale  # Captum converges to the exact integral …
    assert errs[1] <= errs[0]  # … from further away with fewer steps


def test_explain_another_action_and_top(model, data):
    row = data.iloc[3][list(FEATURES)].to_dict()
    choice = predict(model, row).action
    e = explain(model, row)
    assert e.action == choice
    other = next(a for a in ACTIONS if a != choice)
    e2 = explain(model, row, action=other)
    assert e2.action == other and abs(e2.delta) < 1e-9
    top = e.top(5)
    assert [set(d) for d in top] == [{"feature", "value", "attribution"}] * 5
    mags = [abs(d["attribution"]) for d in top]
    assert mags == sorted(mags, reverse=True)
    assert mags[0] == max(abs(v) for v in e.attributions.values())
    assert all(d["value"] == row[d["feature"]] for d in top)
    assert len(e.top(None)) == 18
    with pytest.raises(LearnopsError, match="unknown action"):
        explain(model, row, action="dance")
    with pytest.raises(LearnopsError, match="unknown attribution method"):
        explain(model, row, method="shap")


def test_a_feature_at_its_mean_gets_nothing(model, data):
    row = data.iloc[5][list(FEATURES)].to_dict()
    j = FEATURES.index("engagement")
    row["engagement"] = float(model.stats.mean[j])
    assert explain(model, row).attributions["engagement"] == 0.0
