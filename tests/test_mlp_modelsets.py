"""Model sets (learnops.mlp.ensemble, learnops.mlp.cohorts) as one artifact: round trip with
identical bytes and predictions, an ensemble of one is the single model, an ensemble's
probabilities are the mean of its members', small cohorts are routed to the global model, and
the served decision (``predict``) agrees with the batch path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from learnops.config import MlpConfig
from learnops.contracts import FEATURES
from learnops.mlp import load, predict, predict_batch, save
from learnops.mlp.artifacts import MODELSET_FILE, save_set
from learnops.mlp.cohorts import CohortModels, train_cohort_models
from learnops.mlp.ensemble import Ensemble, member_seeds, train_ensemble
from learnops.mlp.inference import PROBA_COLUMNS
from learnops.mlp.synthetic import synthetic_decisions

P = list(PROBA_COLUMNS)

CFG = MlpConfig(epochs=2, hidden=(16,), patience=2)


@pytest.fixture(scope="module")
def data():
    return synthetic_decisions(800, seed=5)


@pytest.fixture(scope="module")
def ensemble(data):
    return train_ensemble(data, CFG, seed=3, n=3)


def _tree(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_member_seeds_are_derived_from_the_seed():
    assert member_seeds(3, 1) == [3]
    s = member_seeds(3, 4)
    assert s[0] == 3 and len(set(s)) == 4 and s == member_seeds(3, 4)
    assert member_seeds(4, 4)[1:] != s[1:]


def test_ensemble_probabilities_are_the_mean_of_the_members(ensemble, data):
    rows = data.head(200)
    members = [predict_batch(m, rows)[P].to_numpy() for m in ensemble.members]
    # the members differ (different seeds), so the mean is a real average
    assert np.abs(members[0] - members[1]).max() > 1e-3
    mean = np.mean(members, axis=0)
    out = predict_batch(ensemble, rows)
    np.testing.assert_allclose(out[P].to_numpy(), mean, atol=1e-12)
    actions = [c.removeprefix("p_") for c in PROBA_COLUMNS]
    assert list(out["action"]) == [actions[i] for i in mean.argmax(1)]
    # the served path (one decision, numpy) agrees with the batch path
    one = predict(ensemble, rows.iloc[7][list(FEATURES)].to_dict())
    np.testing.assert_allclose(list(one.probabilities.values()), mean[7], atol=1e-6)
    # the matrix path used by evaluate/register: softmax(log p / 1) == p
    from learnops.mlp.calibration import apply_temperature
    from learnops.mlp.features import feature_matrix

    logp, _ = ensemble.logits_and_delta(feature_matrix(rows))
    np.testing.assert_allclose(apply_temperature(logp, ensemble.temperature), mean, atol=1e-6)


def test_ensemble_of_one_is_the_single_model(ensemble, data):
    one = Ensemble([ensemble.members[0]], [3])
    rows = data.head(300)
    a = predict_batch(one, rows, include_delta=True)
    b = predict_batch(ensemble.members[0], rows, include_delta=True)
    np.testing.assert_array_equal(a[P].to_numpy(), b[P].to_numpy())
    assert (a["action"] == b["action"]).all()
    # the same columns in the same order, the difficulty change included (NaN off adjust)
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a["confidence"], b["confidence"])
    np.testing.assert_allclose(a["difficulty_delta"], b["difficulty_delta"], rtol=1e-6)
    feats = rows.iloc[0][list(FEATURES)].to_dict()
    assert predict(one, feats) == predict(ensemble.members[0], feats)


def test_ensemble_artifact_round_trip(ensemble, data, tmp_path):
    d1 = save_set(ensemble, tmp_path / "a")
    d2 = save_set(ensemble, tmp_path / "b")
    assert _tree(d1) == _tree(d2)  # deterministic bytes
    assert (d1 / MODELSET_FILE).is_file() and (d1 / "metadata.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    back = load(d1)
    assert isinstance(back, Ensemble) and back.seeds == ensemble.seeds
    rows = data.head(200)
    np.testing.assert_array_equal(
        predict_batch(back, rows)[P].to_numpy(),
        predict_batch(ensemble, rows)[P].to_numpy(),
    )
    # saving over it replaces it atomically; a single model there loads as a single model
    save(ensemble.members[0], d1)
    assert not (d1 / MODELSET_FILE).exists() and not isinstance(load(d1), Ensemble)


def test_cohort_artifact_round_trip_and_fallback(ensemble, data, tmp_path):
    # no band reaches min_rows: only the global model is trained, every row falls back to it
    cm = train_cohort_models(data, CFG, seed=0, cohort_by="ability_band", min_rows=len(data) + 1)
    assert cm.models == {} and (predict_batch(cm, data)["model"] == "global").all()
    # then give the high band a model of its own (another network): only its rows use it
    big = "high"
    cm.models = {big: ensemble.members[1]}
    d = save_set(cm, tmp_path / "cm")
    assert _tree(d) == _tree(save_set(cm, tmp_path / "cm2"))
    back = load(d)
    assert isinstance(back, CohortModels) and back.edges == cm.edges and back.sizes == cm.sizes
    a, b = predict_batch(back, data), predict_batch(cm, data)
    np.testing.assert_array_equal(a[P].to_numpy(), b[P].to_numpy())
    labels = back.labels(data)
    assert (a["model"].to_numpy() == np.where(labels == big, big, "global")).all()
    glob = predict_batch(cm.global_model, data)
    small = labels != big
    np.testing.assert_array_equal(
        a.loc[small, P].to_numpy(),
        glob.loc[small, P].to_numpy(),
    )
    # the served path routes one decision by its ability alone, like the batch path
    for i in (0, 1, 2, 3):
        one = predict(back, data.iloc[i][list(FEATURES)].to_dict())
        np.testing.assert_allclose(list(one.probabilities.values()),
                                   a[P].to_numpy()[i], atol=1e-6)  # fmt: skip


def test_module_cohorts_without_a_module_use_the_global_model(data):
    df = data.assign(module=np.where(np.arange(len(data)) % 2, "A", "B"))
    cm = CohortModels("module", train_ensemble(df, CFG, 0, 1).members[0], {}, None, {})
    cm.models = {"A": train_ensemble(df, CFG, 9, 1).members[0]}
    out = predict_batch(cm, df.drop(columns="module").head(20))
    assert (out["model"] == "global").all()
    assert predict(cm, df.iloc[1][list(FEATURES)].to_dict()) == predict(
        cm.global_model, df.iloc[1][list(FEATURES)].to_dict()
    )
