"""The ability model in the product (issue 18, item 3): ``irt.ability_model`` supplies the decision
features ``ability``/``ability_se`` (export and retrain), and the registry versions it as model
type ``learner`` with a gate on held-out log-loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_IRT

from learnops.io import read_table

FAST = {"bootstrap": 50, "elo_alpha": [0.4, 0.8], "elo_beta": [0.0, 0.05]}


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sim_responses() -> pd.DataFrame:
    from learnops.config import SimulateConfig
    from learnops.data.simulate import simulate

    cfg = SimulateConfig(
        n_learners=100, n_items=30, n_modules=3, sessions_per_learner=3, items_per_session=10
    )
    return simulate(cfg, seed=4).responses


@pytest.fixture(scope="module")
def params():
    from learnops.config import Params

    return Params(irt=TINY_IRT, learner_models=FAST)


@pytest.mark.parametrize("name", ["irt", "elo", "best_lr"])
def test_artifact_round_trip_is_exact_and_byte_stable(sim_responses, params, tmp_path, name):
    from learnops.learner_models.ability import fit_ability_model
    from learnops.learner_models.artifact import load, save

    model = fit_ability_model(name, sim_responses, params)
    save(model, tmp_path / "a")
    save(fit_ability_model(name, sim_responses, params), tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # a refit writes the same bytes
    save(model, tmp_path / "a")  # replacing a saved model leaves no temporary directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    before, after = model.predict(sim_responses), load(tmp_path / "a").predict(sim_responses)
    np.testing.assert_allclose(after.p, before.p, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(after.ability, before.ability, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(after.ability_se, before.ability_se, rtol=1e-9, atol=1e-10)


def test_load_refuses_a_directory_without_a_model(tmp_path):
    from learnops.errors import LearnopsError
    from learnops.learner_models.artifact import load

    with pytest.raises(LearnopsError, match="not a learner model directory"):
        load(tmp_path)


def test_learner_gate_rules():
    from learnops.lifecycle.gates import learner_gate

    good = {"log_loss": 0.50, "log_loss_irt": 0.52, "log_loss_diff_vs_irt": -0.02}
    ok = learner_gate({**good, "log_loss_diff_low": -0.03}, None)
    assert ok.deploy
    # an interval that straddles 0 is not "worse beyond the interval": it passes
    assert learner_gate({**good, "log_loss_diff_low": -0.001}, None).deploy
    worse = learner_gate({**good, "log_loss_diff_low": 0.004}, None)
    assert not worse.deploy and "above the maximum 0" in worse.reasons[0]
    assert not learner_gate({**good, "log_loss_diff_low": None}, None).deploy  # not measured
    beaten = learner_gate({**good, "log_loss_diff_low": -0.03}, {"log_loss": 0.49})
    assert not beaten.deploy and "does not beat production" in beaten.reasons[0]
    assert learner_gate({**good, "log_loss_diff_low": -0.03}, {"log_loss": 0.50}).deploy


def test_holdout_metrics_match_a_direct_computation(sim_responses, params):
    """The gate's held-out log-loss is the mean log-loss of the candidate on each learner's latest
    answers, predicted from the full sequences, and the static-IRT reference is the same
    computation with StaticIrt fitted on the earlier answers."""
    from learnops.data.splits import response_holdout
    from learnops.evaluation.metrics import binary_log_loss
    from learnops.learner_models.ability import holdout_metrics
    from learnops.learner_models.elo import Elo
    from learnops.learner_models.irt_static import StaticIrt

    r = sim_responses.reset_index(drop=True)
    train, test = response_holdout(r, params.learner_models.holdout_frac)
    elo = Elo(alpha=0.6, beta=0.05).fit(train)
    irt = StaticIrt(params.irt, params.seed).fit(train)
    got = holdout_metrics(elo, r, params)
    known = set(train["item_id"])
    ids = set(test.loc[test["item_id"].isin(known), "response_id"])
    table = r[r["item_id"].isin(known)].reset_index(drop=True)
    held = table["response_id"].isin(ids).to_numpy()
    y = table["correct"].to_numpy(float)[held]
    want = binary_log_loss(y, elo.predict(table).p[held])
    want_irt = binary_log_loss(y, irt.predict(table).p[held])
    assert got["n"] == held.sum()
    assert got["log_loss"] == pytest.approx(want, rel=1e-9)
    assert got["log_loss_irt"] == pytest.approx(want_irt, rel=1e-9)
    assert got["log_loss_diff_vs_irt"] == pytest.approx(want - want_irt, rel=1e-9)
    assert got["log_loss_diff_low"] <= got["log_loss_diff_vs_irt"] <= got["log_loss_diff_high"]


@pytest.fixture
def exported(tiny_project, own_store, tmp_path):
    def make(**irt):
        return tiny_project(tmp_path / "p", irt={**TINY_IRT, **irt}, learner_models=FAST)

    return make


def test_export_keeps_logged_abilities_with_irt_and_takes_the_chosen_model_otherwise(exported):
    from learnops.learner_models.ability import ability_asof, fit_ability_model
    from learnops.stages import export

    p = exported()
    path = p.path(p.paths.processed_dir) / "decisions.parquet"
    logged = path.read_bytes()
    res = export.run(p)
    assert res.written == {"decisions": False, "responses": False}  # irt: byte for byte the same
    assert path.read_bytes() == logged

    from learnops.config import load_params

    (p.root / "params.yaml").write_text(
        (p.root / "params.yaml").read_text().replace("irt:\n", "irt:\n  ability_model: elo\n", 1)
    )
    q = load_params(p.root / "params.yaml")
    assert q.irt.ability_model == "elo"
    res = export.run(q)
    assert res.written["decisions"] and not res.written["responses"]
    dec = read_table(path)
    before = pd.read_parquet(pd.io.common.BytesIO(logged))
    # only the two ability columns changed
    same = [c for c in before.columns if c not in ("ability", "ability_se")]
    pd.testing.assert_frame_equal(dec[same], before[same])
    assert not np.allclose(dec["ability"], before["ability"])
    responses = read_table(p.path(p.paths.processed_dir) / "responses.parquet")
    want = ability_asof(fit_ability_model("elo", responses, q), responses, dec)
    np.testing.assert_allclose(dec["ability"], want["ability"], atol=1e-12)
    np.testing.assert_allclose(dec["ability_se"], want["ability_se"], atol=1e-12)
    # the supplied ability tracks the simulator's (noisy) logged estimate of the true ability
    assert np.corrcoef(dec["ability"], before["ability"])[0, 1] > 0.3
    # as of each decision: consecutive decisions of a learner with answers between them get
    # (almost always) another ability, with none between them the same one
    d = dec.sort_values(["learner_hash", "timestamp"], kind="stable").reset_index(drop=True)
    r = responses.sort_values("timestamp", kind="stable")
    answered = np.array(
        [
            (
                (r["learner_hash"] == d.at[i, "learner_hash"])
                & (r["timestamp"] < d.at[i, "timestamp"])
            ).sum()
            for i in range(len(d))
        ]
    )
    same_learner = d["learner_hash"].to_numpy()[1:] == d["learner_hash"].to_numpy()[:-1]
    step = np.diff(d["ability"].to_numpy())
    quiet = same_learner & (np.diff(answered) == 0)
    busy = same_learner & (np.diff(answered) > 0)
    assert busy.sum() > 100
    assert np.all(step[quiet] == 0)  # (the simulator rarely decides twice without an answer)
    assert np.mean(step[busy] != 0) > 0.9


def test_register_versions_gates_and_rolls_back_the_ability_model(exported, sim_responses):
    from learnops.data.store import EventStore
    from learnops.learner_models.ability import fit_ability_model
    from learnops.learner_models.artifact import save
    from learnops.learner_models.compare import split_temporal
    from learnops.learner_models.elo import Elo
    from learnops.lifecycle.registry import Registry
    from learnops.lifecycle.retrain import register_pipeline

    p = exported(ability_model="best_lr")
    responses = read_table(p.path(p.paths.processed_dir) / "responses.parquet")
    train, _ = split_temporal(responses.reset_index(drop=True), p.learner_models.holdout_frac)
    art = p.path(p.paths.models_dir) / "learner"

    save(fit_ability_model("best_lr", train, p), art)
    [first] = register_pipeline(p, models=["learner"])
    assert first.deployed and first.version == "v1", first.decision.reasons
    assert first.metrics["log_loss_diff_low"] <= 0
    [again] = register_pipeline(p, models=["learner"])  # same data and bytes: no new version
    assert again.reused and again.version == "v1"

    # a bad Elo (huge constant step): significantly worse than static IRT, refused
    save(Elo(alpha=3.0, beta=0.0).fit(train), art)
    [bad] = register_pipeline(p, models=["learner"])
    assert not bad.deployed and bad.status == "completed"
    assert bad.metrics["log_loss_diff_low"] > 0
    assert any("static IRT" in r or "paired" in r for r in bad.decision.reasons)
    assert bad.production_version == "v1"

    # a sound Elo: deployed if not worse than production on the same answers, then rolled back
    save(fit_ability_model("elo", train, p), art)
    [elo] = register_pipeline(p, models=["learner"])
    store = EventStore(p.db_url)
    try:
        reg = Registry(store, p.path(p.paths.models_dir) / "registry")
        prod_ll = elo.production_metrics["log_loss"]
        assert elo.deployed == (elo.metrics["log_loss"] <= prod_ll)
        if elo.deployed:
            assert reg.production("learner").version == elo.version
            assert reg.rollback("learner").version == "v1"
        assert reg.production("learner").version == "v1"
        assert [v.status for v in reg.list("learner")][:2] == ["deployed", "completed"]
        assert reg.get("learner", "v1").config["irt"]["ability_model"] == "best_lr"
    finally:
        store.dispose()


def test_supply_keeps_logged_abilities_without_responses(sim_responses, params, caplog):
    from learnops.config import Params
    from learnops.learner_models.ability import supply_abilities

    decisions = pd.DataFrame({"learner_hash": ["a"], "timestamp": [pd.Timestamp(0, tz="UTC")],
                              "ability": [0.3], "ability_se": [0.2]})  # fmt: skip
    elo = Params(irt={**TINY_IRT, "ability_model": "elo"}, learner_models=FAST)
    with caplog.at_level("WARNING", logger="learnops.ability"):
        assert supply_abilities(decisions, sim_responses.iloc[:0], elo) is decisions
    assert "no responses in the window" in caplog.text
    assert supply_abilities(decisions, sim_responses, params) is decisions  # irt: as logged
    got = supply_abilities(decisions, sim_responses, elo)
    assert got["ability"].iloc[0] == 0.0  # a learner with no answers: Elo's starting ability
