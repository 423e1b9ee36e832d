"""Model directory round trip, single and batch inference, calibration helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS, FEATURES
from learnops.errors import LearnopsError
from learnops.hashing import data_fingerprint
from learnops.mlp import Prediction, load, predict, predict_batch, save, train
from learnops.mlp.calibration import expected_calibration_error, fit_temperature, reliability_table
from learnops.mlp.synthetic import synthetic_decisions


@pytest.fixture(scope="module")
def trained():
    df = synthetic_decisions(2000, seed=4)
    return df, train(df, MlpConfig(epochs=4), seed=1)


def test_save_load_roundtrip(tmp_path, trained):
    df, result = trained
    out = save(result, tmp_path / "models" / "mlp")
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv",
        "metadata.json",
        "model.safetensors",
    ]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["features"] == list(FEATURES)
    assert meta["actions"] == list(ACTIONS)
    assert meta["temperature"] == pytest.approx(result.temperature)
    assert meta["data"]["fingerprint"] == data_fingerprint(df)
    assert {"torch", "numpy", "python"} <= set(meta["versions"])
    assert meta["params"]["epochs"] == 4 and meta["seed"] == 1
    model = load(out)
    a = predict_batch(result.model, df.head(50))
    b = predict_batch(model, df.head(50))
    np.testing.assert_allclose(a.filter(like="p_").to_numpy(), b.filter(like="p_").to_numpy())
    # overwriting an existing model directory leaves no temp dirs behind
    save(model, out)
    assert [p.name for p in out.parent.iterdir()] == ["mlp"]


def test_load_errors(tmp_path):
    with pytest.raises(LearnopsError, match="missing metadata.json"):
        load(tmp_path)


def test_single_and_batch_predictions_agree(trained):
    df, result = trained
    batch = predict_batch(result.model, df.head(30), include_delta=True)
    assert list(batch.columns) == [
        "decision_id", "learner_hash",
        *[f"p_{a}" for a in ACTIONS], "action", "confidence", "difficulty_delta",
    ]  # fmt: skip
    for i, row in enumerate(df.head(30).to_dict("records")):
        one = predict(result.model, row)
        assert isinstance(one, Prediction)
        assert one.action == batch["action"].iloc[i]
        assert one.confidence == pytest.approx(batch["confidence"].iloc[i], abs=1e-5)
        assert sum(one.probabilities.values()) == pytest.approx(1.0)
        assert list(one.probabilities) == list(ACTIONS)
        if one.action == "adjust_difficulty":
            assert one.difficulty_delta == pytest.approx(
                batch["difficulty_delta"].iloc[i], abs=1e-4
            )
        else:
            assert one.difficulty_delta is None and np.isnan(batch["difficulty_delta"].iloc[i])
    assert predict(result.model, df.head(3)).shape[0] == 3


def test_predict_rejects_bad_features(trained):
    df, result = trained
    row = df.iloc[0].to_dict()
    row.pop("engagement")
    with pytest.raises(LearnopsError, match="engagement"):
        predict(result.model, row)
    with pytest.raises(LearnopsError, match="missing feature column"):
        predict_batch(result.model, df.drop(columns=["ability"]))


def test_ece_and_temperature_on_known_cases():
    rng = np.random.default_rng(0)
    n = 20000
    # perfectly calibrated: labels drawn from the predicted probabilities
    logits = rng.normal(size=(n, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1).clip(0, 4)
    assert expected_calibration_error(y, p) < 0.02
    # overconfident logits (×3) are fixed by a temperature of ~3
    t = fit_temperature(y, logits * 3)
    assert t == pytest.approx(3.0, rel=0.05)
    # all wrong with confidence 1 → ECE 1
    onehot = np.eye(5)[(y + 1) % 5]
    assert expected_calibration_error(y, onehot) == pytest.approx(1.0)
    table = reliability_table(y, p, n_bins=15)
    assert len(table) == 15 and table["count"].sum() == n
