"""The server assigns the experiment arm, serves that arm's policy with epsilon exploration and
logs the true propensities and the whole logging distribution."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from scipy import stats  # noqa: E402

from learnops.ab.assign import assign_group  # noqa: E402
from learnops.ab.experiments import start_experiment  # noqa: E402
from learnops.config import MlpConfig, Params  # noqa: E402
from learnops.contracts import ACTIONS, FEATURES, LOGGING_PROB_COLUMNS  # noqa: E402
from learnops.data.simulate import teacher_probabilities  # noqa: E402
from learnops.data.store import EventStore  # noqa: E402
from learnops.hashing import learner_hash  # noqa: E402
from learnops.lifecycle.registry import Registry  # noqa: E402
from learnops.serve import Tokens, create_app  # noqa: E402

ARMS = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}


@pytest.fixture(scope="module")
def table():
    from learnops.data.simulate import simulate_decisions_table

    return simulate_decisions_table(2000, 3)


@pytest.fixture(scope="module")
def model_dir(table, tmp_path_factory):
    from learnops.mlp import save, train

    result = train(table, MlpConfig(epochs=3, hidden=(32, 16)), seed=2)
    return save(result, tmp_path_factory.mktemp("mlp") / "model")


def _client(tmp_path, model_dir, *, epsilon, threshold=0.6, experiment=True):
    params = Params(
        root=tmp_path,
        mlp={"confidence_threshold": threshold},
        serve={"epsilon": epsilon, "seed": 5},
    )
    store = EventStore(params.db_url)
    reg = Registry(store, params.path(params.paths.models_dir) / "registry")
    v = reg.start("mlp", data_count=2000)
    reg.complete("mlp", v.version, model_dir, {"accuracy": 0.9})
    reg.deploy("mlp", v.version)
    if experiment:
        start_experiment(store, "exp1", ARMS)
    store.dispose()
    return TestClient(create_app(params, tokens=Tokens.of(admin=["adm"])))


def _body(table, i, learner, **extra):
    row = table.iloc[i % len(table)]
    return {**{f: float(row[f]) for f in FEATURES}, "learner_id": learner, **extra}


def _metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_the_server_assigns_the_arm_and_ignores_the_clients_claim(tmp_path, table, model_dir):
    """Every client claims ``ml``; the server serves each learner's hash arm, the same one on
    every request, counts the disagreements, and the arm shares pass the SRM test."""
    client = _client(tmp_path, model_dir, epsilon=0.05)
    n = 600
    seen: dict[str, str] = {}
    for j in range(n):
        lid = f"learner-{j}"
        for k in range(2):
            out = client.post(
                "/decide", json=_body(table, 2 * j + k, lid, ab_test="exp1", ab_group="ml")
            ).json()
            assert out["ab_test"] == "exp1"
            assert out["ab_group"] == assign_group("exp1", learner_hash(lid), ARMS)
            assert seen.setdefault(lid, out["ab_group"]) == out["ab_group"]
            assert {"propensity", "explored"} <= set(out)
    counts = np.array([sum(a == arm for a in seen.values()) for arm in ARMS])
    assert stats.chisquare(counts, np.array(list(ARMS.values())) * n).pvalue > 0.001
    metrics = client.get("/metrics").text
    not_ml = 2 * sum(a != "ml" for a in seen.values())
    assert _metric(metrics, "learnops_ab_client_arm_mismatch_total{") == not_ml
    # the assignments table holds each learner once, with the served arm
    assert client.app.state.decision_log.flush()
    from sqlalchemy import select

    from learnops.data.store import ABAssignment

    with client.app.state.store.session() as s:
        rows = s.execute(select(ABAssignment.learner_hash, ABAssignment.group)).all()
    assert len(rows) == n
    assert dict(rows) == {learner_hash(lid): arm for lid, arm in seen.items()}


def test_arm_policies_and_logged_propensities(tmp_path, table, model_dir):
    """ε = 0.2 and threshold 1 (so hybrid always asks the teacher): the ml arm is decided by
    the model, the gpt4 and hybrid arms by the sampling teacher; each logged distribution is
    (1 − ε)·base + ε/5 with base one-hot on the model's argmax or the teacher's probabilities,
    the propensity is its probability of the served action, and the mean of 1/propensity is 5."""
    from learnops.mlp import load, predict

    eps = 0.2
    client = _client(tmp_path, model_dir, epsilon=eps, threshold=1.0)
    model = load(model_dir)
    for j in range(900):
        out = client.post("/decide", json=_body(table, j, f"l{j}")).json()
        assert 0 < out["propensity"] <= 1
    assert client.app.state.decision_log.flush()
    d = client.app.state.store.read_decisions()
    assert len(d) == 900
    assert set(d["ab_group"]) == set(ARMS)
    assert (d.loc[d["ab_group"] == "ml", "decided_by"] == "ml").all()
    assert (d.loc[d["ab_group"] != "ml", "decided_by"] == "llm").all()
    p = d[list(LOGGING_PROB_COLUMNS)].to_numpy(float)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    a_idx = d["action"].map(ACTIONS.index).to_numpy()
    np.testing.assert_allclose(d["propensity"], p[np.arange(len(d)), a_idx])
    X = d[list(FEATURES)].to_numpy(float)
    teacher = teacher_probabilities(X)
    for i, row in d.iterrows():
        if row["ab_group"] == "ml":
            choice = predict(model, {f: row[f] for f in FEATURES}).action
            base = np.eye(5)[ACTIONS.index(choice)]
        else:
            base = teacher[i]
        np.testing.assert_allclose(p[i], (1 - eps) * base + eps / 5, atol=1e-9)
    for arm, g in d.groupby("ab_group"):
        inv = 1 / g["propensity"].to_numpy()
        assert abs(inv.mean() - 5) < 4 * inv.std(ddof=1) / np.sqrt(len(inv)) + 1e-9, arm
    explored = d["explored"].astype(bool)
    assert abs(explored.mean() - eps) < 4 * np.sqrt(eps * (1 - eps) / len(d))
    # only the hybrid policy hands decisions to the teacher for low confidence (all of them at
    # threshold 1); the ml and gpt4 arms never count as low-confidence fallbacks
    low = _metric(client.get("/metrics").text, "learnops_low_confidence_total")
    assert low == (d["ab_group"] == "hybrid").sum()


def test_without_an_experiment_the_default_policy_is_served(tmp_path, table, model_dir):
    """No experiment: hybrid (model when sure, else the teacher), ab_test and ab_group null;
    ε = 0: every propensity is 1 for the model and the teacher's probability for the teacher."""
    client = _client(tmp_path, model_dir, epsilon=0.0, experiment=False)
    outs = [client.post("/decide", json=_body(table, j, f"u{j}")).json() for j in range(80)]
    assert all(o["ab_test"] is None and o["ab_group"] is None for o in outs)
    assert not any(o["explored"] for o in outs)
    for o in outs:
        if o["decided_by"] == "ml":
            assert o["propensity"] == 1.0 and o["confidence"] >= 0.6
        else:
            assert o["propensity"] == pytest.approx(o["probabilities"][o["action"]])


def test_a_stopped_experiment_is_no_longer_served(tmp_path, table, model_dir):
    from learnops.ab.experiments import stop_experiment

    client = _client(tmp_path, model_dir, epsilon=0.05)
    state = client.app.state.serve
    out = client.post("/decide", json=_body(table, 0, "x")).json()
    assert out["ab_test"] == "exp1"
    assert state.decision_log.flush()
    stop_experiment(state.store, state.params, "exp1")
    state.experiments.refresh()
    out = client.post("/decide", json=_body(table, 1, "x")).json()
    assert out["ab_test"] is None and out["ab_group"] is None
