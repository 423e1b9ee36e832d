"""The evaluate stage end to end on a tiny pipeline: simulate → export → train → fit → evaluate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from learnops.data.store import EvaluationResult as EvaluationRow
from learnops.data.store import EventStore
from learnops.stages import evaluate


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_project, own_store):
    """A tiny pipeline's params with data, models/mlp and models/irt in place."""
    root = tmp_path_factory.mktemp("evaluate")
    return tiny_project(root, trained=True, evaluate={"bootstrap": 30})


@pytest.fixture(scope="module")
def result(pipeline):
    mp = pytest.MonkeyPatch()
    mp.delenv("LEARNOPS_DB_URL", raising=False)
    try:
        yield evaluate.run(pipeline, latency_calls=100)
    finally:
        mp.undo()


def test_metrics_file_and_headline(pipeline, result):
    path = pipeline.path("reports/metrics/evaluate.json")
    assert path.is_file()
    metrics = json.loads(path.read_text())
    for key in (
        "accuracy", "macro_f1", "log_loss", "brier", "ece", "mce", "ece_quantile", "ci",
        "calibration", "per_class", "ml_usage", "threshold", "ope", "irt",
        "recommendation", "model_version", "n_test",
    ):  # fmt: skip
        assert key in metrics, key
    assert "latency_ms" not in metrics  # wall-clock: in reports/timings, not a DVC metric
    assert set(metrics["ci"]) == {"accuracy", "macro_f1", "ece", "log_loss"}
    assert set(metrics["calibration"]) == {"before", "after"}
    assert {"ips", "snips", "dr"} <= set(metrics["ope"]["deterministic"])
    assert {"ips", "snips", "dr"} <= set(metrics["ope"]["stochastic"])
    assert "value" in metrics["ope"]["logged"]
    for key in ("accuracy", "auc", "rmse", "log_loss", "brier", "ece"):
        assert key in metrics["irt"], key
    assert metrics["model_version"].startswith("pipeline-")
    assert metrics == result.metrics


def test_latency_goes_to_timings_not_metrics(pipeline, result):
    timings = json.loads(pipeline.path("reports/timings/evaluate.json").read_text())
    assert {"p50", "p95", "p99"} <= set(timings["latency_ms"])
    assert timings["latency_calls"] == 100 == len(result.latency_ms)
    assert timings["latency_ms"]["p95"] == pytest.approx(np.percentile(result.latency_ms, 95))
    assert timings == result.timings
    # the report's verdict checks latency too; evaluate.json's checks only deterministic targets
    assert "latency_ms" in {c["name"] for c in result.recommendation["checks"]}
    assert result.metrics["recommendation"]["checked"] == [
        "accuracy", "calibration_error", "ml_usage",
    ]  # fmt: skip
    assert "latency" not in json.dumps(result.metrics["recommendation"]["reasons"])


def test_metrics_file_is_byte_identical_on_a_rerun(pipeline, result, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    outputs = [
        "reports/metrics/evaluate.json",
        "reports/plots/evaluate/confusion.csv",
        "reports/plots/evaluate/calibration.csv",
        "reports/plots/evaluate/threshold.csv",
    ]
    first = {name: pipeline.path(name).read_bytes() for name in outputs}
    timings_first = pipeline.path("reports/timings/evaluate.json").read_bytes()
    again = evaluate.run(pipeline, record=False, latency_calls=37)
    for name in outputs:
        assert pipeline.path(name).read_bytes() == first[name], name
    assert again.metrics == result.metrics
    # the wall-clock file did change (another number of calls, other timings)
    assert pipeline.path("reports/timings/evaluate.json").read_bytes() != timings_first


def test_a_slow_machine_changes_the_report_verdict_not_the_metrics(pipeline, result, monkeypatch):
    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    slow = np.full(50, 10 * pipeline.evaluate.targets.latency_ms)
    monkeypatch.setattr(evaluate, "measure_latency", lambda *a, **k: slow)
    res = evaluate.run(pipeline, write=False, record=False)
    assert res.metrics == result.metrics
    assert res.recommendation["deploy"] is False
    assert not res.checks.loc["latency_ms", "passed"]
    assert res.checks.loc["latency_ms", "value"] == pytest.approx(slow[0])
    assert "latency (ms)" in res.recommendation["verdict"]


def test_the_stage_does_not_import_the_lifecycle_package():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(evaluate))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported and not any(m.startswith("learnops.lifecycle") for m in imported)


def test_accuracy_matches_sklearn_on_the_test_learners(pipeline, result):
    from learnops.data.splits import mlp_holdout
    from learnops.io import read_table
    from learnops.mlp import load, predict_batch

    decisions = read_table(pipeline.path(pipeline.paths.processed_dir) / "decisions.parquet")
    test = mlp_holdout(decisions, pipeline)[1]
    pred = predict_batch(load(pipeline.path("models/mlp")), test)["action"]
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(test["action"], pred))
    assert result.metrics["n_test"] == len(test)
    np.testing.assert_allclose(result.mlp.proba.sum(axis=1), 1.0)


def test_confusion_csv_has_one_row_per_test_decision(pipeline, result):
    confusion = pd.read_csv(pipeline.path("reports/plots/evaluate/confusion.csv"))
    assert list(confusion.columns) == ["actual", "predicted"]
    assert len(confusion) == result.metrics["n_test"]
    assert (confusion["actual"] == confusion["predicted"]).mean() == pytest.approx(
        result.metrics["accuracy"]
    )
    cal = pd.read_csv(pipeline.path("reports/plots/evaluate/calibration.csv"))
    assert list(cal.columns) == ["bin", "mean_confidence", "accuracy", "count"]
    assert cal["count"].sum() == result.metrics["n_test"]
    thr = pd.read_csv(pipeline.path("reports/plots/evaluate/threshold.csv"))
    assert list(thr.columns) == ["threshold", "ml_usage", "ml_accuracy"]
    assert thr["ml_usage"].is_monotonic_decreasing


def test_bootstrap_ci_contains_the_estimate(result):
    for name in ("accuracy", "log_loss"):
        ci = result.metrics["ci"][name]
        assert ci["ci_low"] <= ci["estimate"] <= ci["ci_high"], (name, ci)
    assert result.metrics["ci"]["accuracy"]["estimate"] == result.metrics["accuracy"]


def test_recommendation_and_store_row(pipeline, result):
    rec = result.metrics["recommendation"]
    assert isinstance(rec["deploy"], bool)
    assert rec["verdict"].startswith("DEPLOY" if rec["deploy"] else "DO NOT DEPLOY")
    store = EventStore(pipeline.db_url)
    with store.session() as s:
        rows = s.query(EvaluationRow).all()
        assert len(rows) == 1
        row = rows[0]
        assert row.model_type == "mlp"
        assert row.model_version == result.model_version
        assert row.accuracy == pytest.approx(result.metrics["accuracy"])
        assert row.id == result.evaluation_id
    store.dispose()


def test_missing_irt_model_evaluates_the_decision_model_alone(pipeline, tmp_path, monkeypatch):
    """Issue 22 item 14: no IRT model (its stage never had responses) is not an error: the
    decision model is evaluated and the IRT part says why it was not."""
    import shutil

    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    shutil.copytree(pipeline.path("models/mlp"), tmp_path / "mlp")
    (tmp_path / "irt").mkdir()  # what fit_irt leaves without data and without a previous model
    p = pipeline.model_copy(
        update={"paths": pipeline.paths.model_copy(update={"models_dir": str(tmp_path)})}
    )
    res = evaluate.run(p, write=False, record=False, latency_calls=10)
    assert res.irt is None and "no trained irt model" in res.irt_skipped.reason
    assert res.metrics["irt"] == {"skipped": True, "reason": res.irt_skipped.reason}


def test_no_bootstrap_reports_no_interval(tmp_path, tiny_project, own_store):
    """``evaluate.bootstrap: 0`` gives null CIs (never a zero-width interval), and the figures
    still draw."""
    from learnops.evaluation import plots

    p = tiny_project(tmp_path, trained=True, evaluate={"bootstrap": 0})
    out = evaluate.run(p, latency_calls=10)
    metrics = json.loads(p.path("reports/metrics/evaluate.json").read_text())

    for key, value in metrics["ci"].items():  # an estimate, without an interval
        assert value["ci_low"] is None and value["ci_high"] is None, key
        assert value["estimate"] is not None, key
    logged = metrics["ope"]["logged"]
    assert logged.get("ci_low") is None and logged.get("ci_high") is None
    fig = plots.plot_headline(out.mlp.bootstrap)
    assert "no CI" in fig.axes[0].get_title()


def test_threshold_is_chosen_on_validation_and_scored_on_test(pipeline, result):
    """The chosen threshold comes from the validation learners; its usage and accuracy in the
    metrics are those of the held-out test learners at that threshold."""
    t = result.metrics["threshold"]
    assert t["chosen_on"] == "validation"
    if t["chosen"] is not None:
        test = result.decisions.test
        use = test["model_confidence"] >= t["chosen"]
        assert t["chosen_ml_usage"] == pytest.approx(use.mean(), rel=1e-9)
        assert t["chosen_ml_accuracy"] == pytest.approx(test.loc[use, "correct"].mean(), rel=1e-9)
    else:
        assert "validation" in t["reason"] or "no threshold" in t["reason"]
