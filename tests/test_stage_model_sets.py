"""A model set in models/mlp goes through the evaluate and register stages like the global
model: evaluate compares it with its global model per cohort, register gates it and registers
it as one version whose artifact loads back as the set."""

from __future__ import annotations

import numpy as np
import pytest

from learnops.mlp import load
from learnops.mlp.artifacts import MODELSET_FILE, save_set
from learnops.mlp.ensemble import Ensemble
from learnops.stages import evaluate, register


@pytest.fixture(scope="module")
def params(tmp_path_factory, tiny_project, own_store):
    p = tiny_project(
        tmp_path_factory.mktemp("model_sets"),
        trained=True,
        evaluate={"bootstrap": 20, "targets": {"accuracy": 0.3, "calibration_error": 0.5}},
        registry={"irt_min_accuracy": 0.5},
    )
    model_dir = p.path(p.paths.models_dir) / "mlp"
    m = load(model_dir)
    # an ensemble of the trained model with itself: its probabilities are the model's
    save_set(Ensemble([m, load(model_dir)], [p.seed, p.seed + 1]), model_dir)
    return p


def test_default_config_says_no_model_set(params):
    assert "No cohort or ensemble model is configured" in evaluate.model_set_note(params)


def test_evaluate_compares_the_set_with_its_global_model(params, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    res = evaluate.run(params, write=False, record=False, latency_calls=20)
    table = res.model_set
    assert table is not None
    assert set(table["ability_band"]) == {"all", "low", "middle", "high"}
    assert set(table["metric"]) == set(evaluate.MODEL_SET_METRICS)
    n_all = table.loc[table["ability_band"] == "all", "decisions"].iloc[0]
    per_band = table[(table["ability_band"] != "all") & (table["metric"] == "accuracy")]
    assert per_band["decisions"].sum() == n_all == len(res.mlp.y)
    # identical members: the set is its global model, every difference and its CI is 0
    np.testing.assert_allclose(table[["diff", "diff_ci_low", "diff_ci_high"]], 0, atol=1e-9)
    all_acc = table[(table["ability_band"] == "all") & (table["metric"] == "accuracy")]
    assert all_acc["ensemble"].iloc[0] == pytest.approx(res.mlp.report["accuracy"], abs=1e-12)


def test_register_registers_the_set_as_one_version(params):
    out = register.run(params)
    mlp = next(o for o in out.outcomes if o["model_type"] == "mlp")
    assert mlp["version"] == "v1" and mlp["deployed"], out.decision_markdown
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    reg = Registry(EventStore(params.db_url), params.path(params.paths.models_dir) / "registry")
    prod = reg.production("mlp")
    from pathlib import Path

    assert (Path(prod.artifact_path) / MODELSET_FILE).is_file()
    assert isinstance(load(prod.artifact_path), Ensemble)


def test_config_keys(tmp_path):
    from conftest import tiny_params
    from pydantic import ValidationError

    p = tiny_params(tmp_path / "a")
    assert p.mlp.cohort_by is None and p.mlp.ensemble == 1
    assert tiny_params(tmp_path / "b", mlp={"cohort_by": "module"}).mlp.cohort_by == "module"
    for bad in ({"cohort_by": "country"}, {"ensemble": 0}, {"cohort_by": "module", "ensemble": 2}):
        with pytest.raises((ValidationError, ValueError)):
            tiny_params(tmp_path / "c", mlp=bad)


def test_train_model_set_follows_the_params(tmp_path, tiny_project, own_store):
    from conftest import TINY_MLP

    from learnops.data.splits import mlp_holdout
    from learnops.mlp import train
    from learnops.mlp.cohorts import CohortModels
    from learnops.stages import processed_table
    from learnops.stages.train_mlp import model_set_summary, train_model_set

    p = tiny_project(tmp_path / "default", mlp=TINY_MLP)
    decisions = mlp_holdout(processed_table(p, "decisions")[1], p)[0]
    result = train(decisions, p.mlp, seed=p.seed)
    assert train_model_set(p, decisions, result) is None
    q = tiny_project(tmp_path / "ens", mlp={**TINY_MLP, "ensemble": 2})
    ens = train_model_set(q, decisions, result)
    assert isinstance(ens, Ensemble) and ens.members[0] is result.model
    assert model_set_summary(ens)["seeds"][0] == q.seed
    r = tiny_project(tmp_path / "mod", mlp={**TINY_MLP, "cohort_by": "module"})
    cm = train_model_set(r, decisions, result)
    assert isinstance(cm, CohortModels) and cm.global_model is result.model
    assert sum(cm.sizes.values()) == len(decisions)
    # cohorts under 500 training rows have no model of their own
    assert set(cm.models) == {k for k, n in cm.sizes.items() if n >= 500}


def test_learnops_retrain_builds_the_configured_set(tmp_path):
    from conftest import TINY_MLP, tiny_params

    from learnops.errors import LearnopsError
    from learnops.lifecycle.retrain import _train_mlp
    from learnops.mlp.synthetic import synthetic_decisions

    decisions = synthetic_decisions(600, seed=4)
    p = tiny_params(tmp_path / "ens", mlp={**TINY_MLP, "ensemble": 2})
    metrics, _ = _train_mlp(decisions, p, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / MODELSET_FILE).is_file()
    assert isinstance(load(tmp_path / "out"), Ensemble) and 0 <= metrics["accuracy"] <= 1
    q = tiny_params(tmp_path / "mod", mlp={**TINY_MLP, "cohort_by": "module"})
    with pytest.raises(LearnopsError, match="module cohort"):
        _train_mlp(decisions, q, tmp_path / "out2", progress=False)
