"""The ``learner_models`` stage on the tiny project: metrics file, truth comparison, no data."""

from __future__ import annotations

import json

import pandas as pd

from learnops.stages import Skipped, learner_models

SECTIONS = {"learner_models": {"bootstrap": 20, "elo_alpha": [0.4, 0.8], "elo_beta": [0.0, 0.05]}}


def test_stage_writes_every_model_side_by_side(tmp_path, tiny_project):
    p = tiny_project(tmp_path, **SECTIONS)
    res = learner_models.run(p)
    doc = json.loads(p.path("reports/metrics/learner_models.json").read_text())
    assert doc == res.metrics
    for split in ("temporal", "learners"):
        for m in ("irt", "elo", "pfa", "best_lr"):
            assert set(doc[split][m]) >= {"auc", "log_loss", "accuracy", "rmse", "ece"}
            assert 0 < doc[split][m]["log_loss"] < 1.5
        low, high = doc[split]["elo"]["log_loss_diff_low"], doc[split]["elo"]["log_loss_diff_high"]
        assert low <= doc[split]["elo"]["log_loss_diff_vs_irt"] <= high
    assert doc["elo"]["alpha"] in (0.4, 0.8)
    # the simulator's truth is there: static IRT's ability tracks the true current ability
    truth = res.truth["learners"].set_index(["model", "practice"])
    assert truth.loc[("irt", "all"), "corr"] > 0.5
    assert "pfa" not in truth.index.get_level_values("model")  # PFA has no ability
    assert isinstance(res.table("temporal"), pd.DataFrame)
    # the ability model irt.ability_model names (default irt), saved for the registry: the static
    # IRT the temporal split fitted, predicting exactly as it did there
    from learnops.learner_models.artifact import load

    saved = load(p.path(p.paths.models_dir) / "learner")
    assert saved.name == p.irt.ability_model == "irt"
    fitted = res.splits["temporal"].models["irt"]
    responses = pd.read_parquet(p.path(p.paths.processed_dir) / "responses.parquet")
    known = responses["item_id"].isin(set(fitted.fit_.items["item_id"]))
    table = responses[known].reset_index(drop=True)
    assert abs(saved.predict(table).p - fitted.predict(table).p).max() < 1e-9


def test_stage_saves_a_chosen_model_it_does_not_compare(tmp_path, tiny_project):
    from learnops.learner_models.artifact import load

    sections = {"learner_models": {**SECTIONS["learner_models"], "models": ["irt", "pfa"]}}
    p = tiny_project(tmp_path, irt={"ability_model": "elo"}, **sections)
    learner_models.run(p)
    saved = load(p.path(p.paths.models_dir) / "learner")
    assert saved.name == "elo" and len(saved.difficulty) > 0


def test_stage_skips_without_responses(tmp_path, tiny_project):
    from learnops.data.export import parquet_bytes

    p = tiny_project(tmp_path, **SECTIONS)
    path = p.path(p.paths.processed_dir) / "responses.parquet"
    path.write_bytes(parquet_bytes(pd.read_parquet(path).iloc[:0]))
    res = learner_models.run(p)
    assert isinstance(res, Skipped) and "no responses in the export window" in res.reason
    doc = json.loads(p.path("reports/metrics/learner_models.json").read_text())
    assert doc == {"skipped": True, "reason": res.reason}
