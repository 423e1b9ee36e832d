"""`learnops mlp train|predict` through Typer's CliRunner."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError
from learnops.mlp.cli import app
from learnops.mlp.synthetic import synthetic_decisions

runner = CliRunner()


def test_train_and_predict_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: defaults
    df = synthetic_decisions(800, seed=1)
    df.to_parquet(tmp_path / "decisions.parquet", index=False)
    df.drop(columns=["action"]).head(25).to_csv(tmp_path / "new.csv", index=False)
    res = runner.invoke(
        app, ["train", "decisions.parquet", "--out", "models/mlp", "--epochs", "2", "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output
    meta = json.loads((tmp_path / "models/mlp/metadata.json").read_text())
    assert meta["seed"] == 3 and meta["params"]["epochs"] == 2
    assert (tmp_path / "reports").exists() is False

    res = runner.invoke(app, ["predict", "models/mlp", "new.csv", "--out", "pred.csv"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == [
        "decision_id",
        "learner_hash",
        *[f"p_{a}" for a in ACTIONS],
        "action",
        "confidence",
    ]
    assert len(pred) == 25
    assert pred["decision_id"].tolist() == df["decision_id"].head(25).tolist()


def test_train_reads_params_yaml_and_live_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 5\nmlp:\n  epochs: 2\n  batch_size: 64\n")
    synthetic_decisions(600, seed=2).to_csv(tmp_path / "d.csv", index=False)
    res = runner.invoke(app, ["train", "d.csv", "--out", "m", "--live-dir", "live"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "m/metadata.json").read_text())
    assert meta["seed"] == 5 and meta["params"]["batch_size"] == 64
    assert (tmp_path / "live" / "metrics.json").is_file()


def test_missing_feature_column_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    synthetic_decisions(300, seed=1).drop(columns=["hint_rate", "engagement"]).to_csv(
        "bad.csv", index=False
    )
    res = runner.invoke(app, ["train", "bad.csv", "--out", "m", "--epochs", "1"])
    assert res.exit_code != 0
    assert isinstance(res.exception, LearnopsError)
    assert str(res.exception) == "decisions: missing feature column(s): hint_rate, engagement"
    assert not (tmp_path / "m").exists()


def test_cli_main_prints_one_line(tmp_path, monkeypatch, capsys):
    import sys

    from learnops import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["learnops", "mlp", "predict", "nope", "x.csv", "--out", "p"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: not an MLP model directory")


def test_explain_writes_complete_attributions(tmp_path, monkeypatch):
    from learnops.contracts import FEATURES
    from learnops.mlp.explain import ATTR_PREFIX

    monkeypatch.chdir(tmp_path)
    df = synthetic_decisions(500, seed=4)
    df.to_csv(tmp_path / "d.csv", index=False)
    assert runner.invoke(app, ["train", "d.csv", "--out", "m", "--epochs", "1"]).exit_code == 0
    res = runner.invoke(app, ["explain", "m", "d.csv", "--out", "why.parquet"])
    assert res.exit_code == 0, res.output
    assert "500 explanations" in res.output
    out = pd.read_parquet(tmp_path / "why.parquet")
    assert list(out.columns[:6]) == [
        "decision_id", "learner_hash", "action", "logit", "baseline_logit", "delta",
    ]  # fmt: skip
    assert list(out.columns[6:]) == [ATTR_PREFIX + f for f in FEATURES]
    attr = out[[ATTR_PREFIX + f for f in FEATURES]].sum(axis=1)
    diff = out["logit"] - out["baseline_logit"]
    assert ((attr - diff).abs() <= 0.01 * diff.abs()).all()
    bad = runner.invoke(app, ["explain", "m", "d.csv", "--out", "x.csv", "--method", "shap"])
    assert bad.exit_code != 0
