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
