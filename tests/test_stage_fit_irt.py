"""The fit_irt stage end to end on a tiny pipeline: simulate → export → fit_irt (2PL twice, 3PL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_IRT
from sklearn.metrics import log_loss, roc_auc_score

from learnops.stages import fit_irt

HELDOUT = ("accuracy", "precision", "recall", "f1", "rmse", "mae", "auc", "log_loss")


def _snapshot(p) -> dict[str, bytes]:
    files = [p.path(p.paths.reports_dir) / "metrics" / "irt.json"]
    files += sorted((p.path(p.paths.models_dir) / "irt").iterdir())
    return {f.name: f.read_bytes() for f in files}


def _expected_keys(models: list[str]) -> set[str]:
    return {"model", "n_train", "n_test", "loglik", "converged"} | {
        f"{m}_{k}" for m in models for k in HELDOUT
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_project, own_store):
    """Params of a tiny pipeline with the exported data in place."""
    return tiny_project(tmp_path_factory.mktemp("fit_irt"), irt=TINY_IRT)


@pytest.fixture(scope="module")
def runs(pipeline):
    """(first result, snapshot after run 1, snapshot after run 2) with the configured 2PL."""
    first = fit_irt.run(pipeline)
    snap1 = _snapshot(pipeline)
    fit_irt.run(pipeline)
    return first, snap1, _snapshot(pipeline)


def test_outputs_and_metric_keys(pipeline, runs):
    res, _, _ = runs
    p = pipeline
    assert res.model == p.irt.model == "2pl"
    for name in ("items.csv", "abilities.csv", "fit.json"):
        assert (p.path("models/irt") / name).is_file(), name
    metrics = json.loads(p.path("reports/metrics/irt.json").read_text())
    assert set(metrics) == _expected_keys(["heuristic", "1pl", "2pl"])
    assert metrics == res.metrics
    assert metrics["model"] == "2pl" and metrics["loglik"] == pytest.approx(res.chosen.loglik)
    fit_json = json.loads(p.path("models/irt/fit.json").read_text())
    assert "seconds" not in fit_json  # reproducible bytes
    timings = json.loads(p.path("reports/timings/fit_irt.json").read_text())
    assert set(timings["fit_seconds"]) == {"heuristic", "1pl", "2pl"}


def test_two_runs_write_identical_bytes(runs):
    _, snap1, snap2 = runs
    assert set(snap1) == {"irt.json", "items.csv", "abilities.csv", "fit.json"}
    for name in snap1:
        assert snap1[name] == snap2[name], name


def test_saved_model_predicts_the_heldout_metrics(pipeline, runs):
    """models/irt reloaded, scored on the held-out split with sklearn, gives irt.json's numbers."""
    from learnops import irt
    from learnops.data.splits import irt_holdout
    from learnops.io import read_table

    res, _, _ = runs
    p = pipeline
    responses = read_table(p.path(p.paths.processed_dir) / "responses.parquet")
    train, test = irt_holdout(responses, p)
    assert (res.metrics["n_train"], res.metrics["n_test"]) == (len(train), len(test))
    pred = irt.load(p.path("models/irt")).predict(test)
    y = test["correct"].astype(int).to_numpy()
    assert res.metrics["2pl_log_loss"] == pytest.approx(log_loss(y, pred), rel=1e-9)
    assert res.metrics["2pl_auc"] == pytest.approx(roc_auc_score(y, pred), rel=1e-9)
    assert res.metrics["2pl_accuracy"] == pytest.approx(np.mean((pred >= 0.5) == y))
    # the saved model was fitted on the training part only
    assert json.loads(p.path("models/irt/fit.json").read_text())["n_responses"] == len(train)


def test_report_tables(pipeline, runs):
    res, _, _ = runs
    assert list(res.heldout.index) == ["heuristic", "1pl", "2pl"]
    assert list(res.heldout.columns[: len(HELDOUT)]) == list(HELDOUT)
    assert res.heldout.loc["2pl", "log_loss"] == pytest.approx(res.metrics["2pl_log_loss"])
    assert list(res.fit_table.index) == ["heuristic", "1pl", "2pl"]
    assert "seconds" not in res.fit_table.columns
    assert res.fit_table.loc["2pl", "loglik"] > res.fit_table.loc["heuristic", "loglik"]
    split = res.split_summary["value"]
    assert split["training rows"] == res.metrics["n_train"]
    assert split["held-out rows"] == res.metrics["n_test"]
    assert res.data_summary.loc["responses", "value"] == sum(split)
    # simulated data: the truth exists, and the 2PL recovers the item difficulties
    assert len(res.recovery) == res.chosen.n_items
    r = np.corrcoef(res.recovery["difficulty"], res.recovery["difficulty_true"])[0, 1]
    assert res.recovery_r["difficulty"] == pytest.approx(r)
    assert res.recovery_r["difficulty"] > 0.8
    assert list(res.recovery_correlations.index) == ["difficulty", "discrimination"]


def test_3pl_runs_end_to_end(pipeline, tmp_path):
    """`dvc exp run -S irt.model=3pl`: the 3PL is compared too, saved, and loads back."""
    from learnops import irt

    p = pipeline.model_copy(
        update={
            "irt": pipeline.irt.model_copy(update={"model": "3pl"}),
            "paths": pipeline.paths.model_copy(
                update={"models_dir": str(tmp_path / "models"), "reports_dir": str(tmp_path / "r")}
            ),
        }
    )
    res = fit_irt.run(p)
    assert res.model == "3pl" and list(res.heldout.index) == ["heuristic", "1pl", "2pl", "3pl"]
    metrics = json.loads((tmp_path / "r/metrics/irt.json").read_text())
    assert set(metrics) == _expected_keys(["heuristic", "1pl", "2pl", "3pl"])
    assert metrics["model"] == "3pl"
    loaded = irt.load(tmp_path / "models/irt")
    assert loaded.model == "3pl" and "guessing" in loaded.items.columns
    assert loaded.items["guessing"].between(0, 1).all()
    assert np.isfinite(metrics["3pl_log_loss"])
