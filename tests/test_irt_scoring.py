"""Ability scoring (EAP/MAP), prediction, holdout split and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from learnops import irt
from learnops.data.splits import response_holdout
from learnops.errors import LearnopsError

ITEMS = pd.DataFrame(
    {
        "item_id": ["q1", "q2", "q3", "q4"],
        "discrimination": [1.2, 0.8, 1.5, 2.0],
        "difficulty": [-1.0, 0.0, 0.5, 1.5],
        "guessing": [0.0, 0.2, 0.1, 0.25],
    }
)


def _lik(theta: float, answers: dict[str, int]) -> float:
    out = 1.0
    for _, it in ITEMS.iterrows():
        if it["item_id"] in answers:
            c, a, b = it["guessing"], it["discrimination"], it["difficulty"]
            p = c + (1 - c) / (1 + np.exp(-a * (theta - b)))
            out *= p if answers[it["item_id"]] else 1 - p
    return out


def _responses(answers: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = [(lid, item, y) for lid, a in answers.items() for item, y in a.items()]
    return pd.DataFrame(rows, columns=["learner_hash", "item_id", "correct"])


ANSWERS = {
    "new": {"q1": 1, "q2": 0, "q3": 1},
    "strong": {"q1": 1, "q2": 1, "q3": 1, "q4": 1},
    "weak": {"q1": 0, "q4": 0},
}


def test_eap_equals_direct_integration():
    got = irt.score(ITEMS, _responses(ANSWERS), method="eap").set_index("learner_id")
    for lid, ans in ANSWERS.items():

        def moment(k: int, ans=ans) -> float:
            f = lambda t: t**k * _lik(t, ans) * np.exp(-t * t / 2)  # noqa: E731
            return integrate.quad(f, -10, 10)[0]

        z = moment(0)
        m1, m2 = moment(1) / z, moment(2) / z
        assert got.loc[lid, "theta"] == pytest.approx(m1, abs=1e-5)
        assert got.loc[lid, "theta_se"] == pytest.approx(np.sqrt(m2 - m1 * m1), abs=1e-5)


def test_map_is_posterior_mode_and_close_to_eap():
    resp = _responses(ANSWERS)
    eap = irt.score(ITEMS, resp, method="eap").set_index("learner_id")
    mp = irt.score(ITEMS, resp, method="map").set_index("learner_id")
    grid = np.linspace(-5, 5, 200001)
    for lid, ans in ANSWERS.items():
        logpost = np.log([_lik(t, ans) for t in grid[::100]]) - grid[::100] ** 2 / 2
        coarse = grid[::100][np.argmax(logpost)]
        assert mp.loc[lid, "theta"] == pytest.approx(coarse, abs=0.01)
        assert abs(mp.loc[lid, "theta"] - eap.loc[lid, "theta"]) < 0.5
        assert 0.3 < mp.loc[lid, "theta_se"] < 1.0
    assert mp.loc["strong", "theta"] > mp.loc["new", "theta"] > mp.loc["weak", "theta"]


def test_new_learner_after_three_answers_against_fitted_items():
    from learnops.irt.sim import simulate

    s = simulate(1500, 12, seed=4)
    f = irt.fit(s.responses, "2pl", se="none")
    new = pd.DataFrame(
        {"learner_id": ["x"] * 3, "item_id": list(f.items["item_id"][:3]), "correct": [1, 1, 1]}
    )
    out = irt.score(f.items, new)
    assert out.loc[0, "theta"] > 0.3
    assert out.loc[0, "theta_se"] < 1.0  # the prior SD shrinks after 3 answers
    wrong = new.assign(correct=0)
    assert irt.score(f.items, wrong).loc[0, "theta"] < -0.3


def test_score_rejects_unknown_items_and_methods():
    with pytest.raises(LearnopsError, match="zz"):
        irt.score(ITEMS, _responses({"a": {"zz": 1}}))
    with pytest.raises(LearnopsError, match="eap"):
        irt.score(ITEMS, _responses(ANSWERS), method="mle")


def test_predict_unknown_learner_and_item():
    from learnops.irt.sim import simulate

    s = simulate(400, 6, seed=1)
    f = irt.fit(s.responses, "2pl", se="none")
    known = s.responses.iloc[:5]
    p = f.predict(known)
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()
    new = pd.DataFrame({"learner_hash": ["ghost"], "item_id": ["i0"], "correct": [1]})
    with pytest.warns(UserWarning, match="θ = 0"):
        p_new = f.predict(new)
    row = f.items.set_index("item_id").loc["i0"]
    expected = 1 / (1 + np.exp(row["discrimination"] * row["difficulty"]))
    assert p_new[0] == pytest.approx(expected)
    with pytest.raises(LearnopsError, match="unknown item.*nope"):
        f.predict(pd.DataFrame({"learner_id": ["u000"], "item_id": ["nope"]}))


def test_split_holdout_uses_time_order_per_learner():
    ts = pd.date_range("2026-01-01", periods=10, freq="h")
    df = pd.DataFrame(
        {
            "learner_hash": ["a"] * 10 + ["b"] * 5 + ["c"],
            "item_id": [f"i{k}" for k in range(16)],
            "correct": [1, 0] * 8,
            "timestamp": list(ts[::-1]) + list(ts[:5]) + [ts[0]],
        }
    )
    train, test = response_holdout(df, frac=0.2)
    assert len(train) + len(test) == len(df)
    # learner a's rows are in reverse time order: its 2 latest are the first two rows
    assert set(test.loc[test.learner_hash == "a", "item_id"]) == {"i0", "i1"}
    assert list(test.loc[test.learner_hash == "b", "item_id"]) == ["i14"]
    assert "c" not in set(test.learner_hash)  # a single response stays in train


def test_evaluate_predictions_values():
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.8, 0.6])
    m = irt.evaluate_predictions(y, p)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(y - p)))
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    # one class: AUC undefined (NaN in Python, null in JSON; see evaluation.metrics)
    assert np.isnan(irt.evaluate_predictions([1, 1], [0.7, 0.9])["auc"])
