"""Global importance (learnops.mlp.importance): a feature the network ignores gets nothing,
one it leans on gets a positive interval, and partial dependence matches its definition."""

from __future__ import annotations

import numpy as np
import torch

from learnops.contracts import ACTIONS, FEATURES
from learnops.mlp.features import FeatureStats
from learnops.mlp.importance import SklearnWrapper, global_importance
from learnops.mlp.model import DecisionNet, MlpModel
from learnops.mlp.synthetic import synthetic_decisions


def test_ignored_feature_is_unimportant_and_pd_matches_its_definition():
    df = synthetic_decisions(600, seed=3)
    X = df[list(FEATURES)].to_numpy(float)
    torch.manual_seed(0)
    net = DecisionNet(hidden=(16,), dropout=0.0)
    ignored, used = FEATURES.index("hour_of_day"), FEATURES.index("engagement")
    with torch.no_grad():
        net.layers[0].weight[:, ignored] = 0.0
        net.layers[0].weight[:, used] *= 20.0  # the network leans on engagement
    model = MlpModel(net=net, stats=FeatureStats.fit(X), temperature=1.0)
    # label = the model's own choice, so shuffling a feature it uses can only hurt
    df = df.assign(action=np.asarray(ACTIONS)[SklearnWrapper(model).predict(X)])
    imp = global_importance(model, df, seed=1, n_boot=100, top=2, ice_rows=30, grid=5)
    perm = imp.permutation
    assert perm.loc["hour_of_day", "accuracy_drop"] == 0.0
    assert perm.loc["hour_of_day", "log_loss_rise"] == 0.0
    assert perm.index[0] == "engagement" and perm.loc["engagement", "accuracy_drop_ci_low"] > 0
    assert (imp.attribution.loc["hour_of_day"] == 0).all()
    overall = imp.attribution["all decisions"]
    assert overall["engagement"] == overall.max()
    # partial dependence at a grid value = mean prediction with the feature set to it
    f = perm.index[0]
    g = imp.pd_grid[f]
    rng = np.random.default_rng(1)
    for _ in range(len(FEATURES)):
        rng.permutation(len(X))  # the permutations drawn before the ICE sample
    sample = rng.choice(len(X), size=30, replace=False)
    Xs = X[sample].copy()
    Xs[:, FEATURES.index(f)] = g[2]
    np.testing.assert_allclose(
        imp.pd_average[f][:, 2], SklearnWrapper(model).predict_proba(Xs).mean(0), atol=1e-12
    )
    assert imp.ice[f].shape == (len(ACTIONS), 30, len(g))
