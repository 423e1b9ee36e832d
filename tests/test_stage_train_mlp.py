"""The train_mlp stage end to end on a tiny pipeline: simulate → export → train_mlp (twice)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_MLP
from sklearn.metrics import accuracy_score, log_loss

from learnops.contracts import ACTIONS
from learnops.stages import train_mlp

METRIC_KEYS = {
    "accuracy", "macro_f1", "nll", "nll_uncalibrated", "ece", "ece_uncalibrated", "brier",
    "temperature", "best_epoch", "epochs_run", "n_train", "n_val", "n_cal", "per_class_recall",
    "baselines",
}  # fmt: skip


def _snapshot(p) -> dict[str, bytes]:
    """Bytes of every file the stage writes except the wall-clock timings."""
    files = [p.path("reports/metrics/train_mlp.json")]
    files += sorted(p.path("models/mlp").iterdir())
    files += sorted(p.path("reports/dvclive/train_mlp").rglob("*.tsv"))
    return {str(f.relative_to(p.root)): f.read_bytes() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_project, own_store):
    """(params, first result, snapshot after run 1, snapshot after run 2)."""
    p = tiny_project(tmp_path_factory.mktemp("train_mlp"), mlp=TINY_MLP)
    first = train_mlp.run(p)
    snap1 = _snapshot(p)
    train_mlp.run(p)
    return p, first, snap1, _snapshot(p)


def test_outputs_and_metric_keys(runs):
    p, res, _, _ = runs
    for name in ("model.safetensors", "metadata.json", "history.csv"):
        assert (p.path("models/mlp") / name).is_file(), name
    metrics = json.loads(p.path("reports/metrics/train_mlp.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert set(metrics) <= METRIC_KEYS | {"difficulty_delta_mae", "rare_actions"}
    rare = metrics["rare_actions"]
    assert set(rare) == {"recommended", "current", "class_weights", "logit_adjust_0.5",
                         "logit_adjust_1"}  # fmt: skip
    assert rare["current"]["macro_f1"]["diff"] == 0.0
    assert rare["current"]["macro_f1"]["estimate"] == pytest.approx(metrics["macro_f1"])
    assert set(metrics["baselines"]) == {
        "majority_accuracy", "logistic_regression_accuracy", "logistic_regression_nll",
    }  # fmt: skip
    assert set(metrics["per_class_recall"]) == set(ACTIONS)
    assert metrics == res.metrics
    timings = json.loads(p.path("reports/timings/train_mlp.json").read_text())
    assert timings["train_seconds"] > 0
    assert "train_seconds" not in metrics  # wall-clock stays out of the DVC metrics


def test_two_runs_write_identical_bytes(runs):
    _, _, snap1, snap2 = runs
    assert "reports/metrics/train_mlp.json" in snap1
    assert any(k.endswith(".tsv") for k in snap1)
    assert snap1.keys() == snap2.keys()
    for name in snap1:
        assert snap1[name] == snap2[name], name


def test_dvclive_plots_have_no_wall_clock_column(runs):
    p, res, _, _ = runs
    tsvs = sorted(p.path("reports/dvclive/train_mlp/plots/metrics").rglob("*.tsv"))
    assert {t.parent.name + "/" + t.stem for t in tsvs} == {
        "train/loss", "train/accuracy", "val/loss", "val/accuracy",
    }  # fmt: skip
    for tsv in tsvs:
        table = pd.read_csv(tsv, sep="\t")
        assert list(table.columns) == ["step", tsv.stem], tsv
        assert len(table) == res.metrics["epochs_run"]
    np.testing.assert_allclose(
        pd.read_csv(p.path("reports/dvclive/train_mlp/plots/metrics/val/loss.tsv"), sep="\t")[
            "loss"
        ],
        res.history["val_loss"],
        rtol=1e-6,
    )


def test_validation_metrics_match_sklearn(runs):
    p, res, _, _ = runs
    tr = res.train_result
    proba = tr.val_proba()
    assert res.metrics["accuracy"] == pytest.approx(accuracy_score(tr.val_y, proba.argmax(1)))
    assert res.metrics["nll"] == pytest.approx(
        log_loss(tr.val_y, proba, labels=list(range(len(ACTIONS)))), rel=1e-6
    )
    assert res.metrics["n_val"] == len(tr.val_y)
    assert res.split_summary.loc["validation rows (early stopping, metrics)", "value"] == len(
        tr.val_y
    )
    # majority baseline: the training split's most frequent action, scored on validation
    from learnops.data.splits import mlp_holdout
    from learnops.io import read_table

    exported = read_table(p.path(p.paths.processed_dir) / "decisions.parquet")
    decisions = mlp_holdout(exported, p)[0]
    y = decisions["action"].map({a: i for i, a in enumerate(ACTIONS)}).to_numpy()
    majority = np.bincount(y[tr.split.train_index], minlength=len(ACTIONS)).argmax()
    assert res.metrics["baselines"]["majority_accuracy"] == pytest.approx(
        accuracy_score(tr.val_y, np.full(len(tr.val_y), majority))
    )


def test_report_tables(runs):
    p, res, _, _ = runs
    assert list(res.data_summary.index) == list(ACTIONS)
    assert res.data_summary["share"].sum() == pytest.approx(1.0)
    n = res.metrics["n_train"] + res.metrics["n_val"] + res.metrics["n_cal"]
    assert res.data_summary["decisions"].sum() == n
    assert len(res.feature_summary) == 18
    assert "seconds" not in res.history.columns
    assert len(res.history) == res.metrics["epochs_run"]
    # reliability: one table per series, the bins partition the validation decisions
    assert set(res.reliability["series"]) == set(res.ece)
    for name, t in res.reliability.groupby("series"):
        assert t["count"].sum() == res.metrics["n_val"], name
    calibrated = next(k for k in res.ece if k.startswith("after"))
    assert res.ece[calibrated] == pytest.approx(res.metrics["ece"])
    assert res.ece["before (T = 1)"] == pytest.approx(res.metrics["ece_uncalibrated"])
    # coverage at the threshold, recomputed from the validation probabilities
    proba = res.train_result.val_proba()
    taken = proba.max(1) >= p.mlp.confidence_threshold
    cov = res.coverage["value"]
    assert cov["share taken by the model"] == pytest.approx(taken.mean())
    if taken.any():
        correct = proba.argmax(1) == res.train_result.val_y
        assert cov["accuracy when taken"] == pytest.approx(correct[taken].mean())
    assert list(res.per_class.index) == list(ACTIONS)
    assert res.per_class["support"].sum() == res.metrics["n_val"]
    assert {"majority", "logistic_regression"} <= set(res.baselines.index)
    assert res.metrics_table.loc["baselines.majority_accuracy", "value"] == pytest.approx(
        res.metrics["baselines"]["majority_accuracy"]
    )
