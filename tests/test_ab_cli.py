"""`learnops ab analyze` command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnops.ab.analysis import RESULT_KEYS
from learnops.ab.cli import app
from learnops.errors import LearnopsError

runner = CliRunner()


def _write_events(path, n=150, effect=0.05):
    rng = np.random.default_rng(0)
    rows = []
    for g in ("ml", "gpt4", "hybrid"):
        for i in range(n):
            u = rng.normal(0.5, 0.1) + (effect if g == "ml" else 0)
            for _ in range(2):
                rows.append(
                    {
                        "learner_id": f"{g}-{i}",
                        "group": g,
                        "accuracy": rng.uniform(),
                        "engagement": u + rng.normal(0, 0.05),
                        "success": int(rng.uniform() < 0.5),
                        "extra": "ignored",
                    }
                )
    df = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_analyze_writes_results_json(tmp_path, suffix):
    events = tmp_path / f"events{suffix}"
    _write_events(events)
    out = tmp_path / "out"
    res = runner.invoke(app, ["analyze", str(events), "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert set(data) >= {"srm", "comparisons", "winner", "decision"}
    assert len(data["comparisons"]) == 6
    assert all(set(c) >= set(RESULT_KEYS) for c in data["comparisons"])
    assert data["winner"] == "ml"
    assert not list(out.glob(".*tmp"))  # atomic write leaves no temp file


def test_analyze_options(tmp_path):
    events = tmp_path / "events.csv"
    _write_events(events, n=150)
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "analyze",
            str(events),
            "--out",
            str(out),
            "--control",
            "hybrid",
            "--metrics",
            "engagement",
            "--alpha",
            "0.01",
            "--planned-split",
            "ml=0.4,gpt4=0.4,hybrid=0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert {c["control"] for c in data["comparisons"]} == {"hybrid"}
    assert [c["metric"] for c in data["comparisons"]] == ["engagement", "engagement"]
    assert data["alpha"] == 0.01
    assert data["srm"]["mismatch"]  # equal groups vs a 40/40/20 plan


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--control", "llm"], "control group 'llm' not found"),
        (["--metrics", "accuracy,clicks"], "missing column.*clicks"),
        (["--planned-split", "ml:0.5"], "--planned-split"),
    ],
)
def test_analyze_bad_input(tmp_path, args, match):
    events = tmp_path / "events.csv"
    _write_events(events, n=10)
    res = runner.invoke(app, ["analyze", str(events), "--out", str(tmp_path / "o"), *args])
    assert isinstance(res.exception, LearnopsError)
    assert res.exception.args[0] and "\n" not in str(res.exception)
    assert re.search(match, str(res.exception)), str(res.exception)
    assert not (tmp_path / "o" / "results.json").exists()


def test_missing_file(tmp_path):
    res = runner.invoke(app, ["analyze", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert isinstance(res.exception, LearnopsError)
    assert "not found" in str(res.exception)


def test_cli_module_is_light():
    code = (
        "import sys, learnops.ab.cli; "
        "heavy = [m for m in ('pandas', 'scipy', 'numpy', 'statsmodels') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- issue 22 item 12: non-finite and out-of-range metric values ---


@pytest.mark.parametrize(
    ("metric", "value", "match"),
    [
        ("engagement", "inf", r"'engagement' has 1 non-finite value"),
        ("accuracy", "-inf", r"'accuracy' has 1 non-finite value"),
        ("accuracy", "1.5", r"'accuracy' must be in \[0, 1\]; 1 value\(s\) outside, e.g. 1.5"),
        ("engagement", "-0.2", r"'engagement' must be in \[0, 1\]"),
        ("success", "2", r"'success' must be in \[0, 1\]"),
    ],
)
def test_analyze_refuses_non_finite_or_out_of_range_metrics(tmp_path, metric, value, match):
    events = tmp_path / "events.csv"
    df = _write_events(events)
    df[metric] = df[metric].astype(object)
    df.loc[7, metric] = value
    df.to_csv(events, index=False)
    res = runner.invoke(app, ["analyze", str(events), "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, LearnopsError), res.output
    assert re.search(match, str(res.exception)), str(res.exception)
    assert "\n" not in str(res.exception)
    assert not (tmp_path / "o" / "results.json").exists()


def test_analyze_refuses_values_whose_variance_overflows(tmp_path):
    events = tmp_path / "events.csv"
    df = _write_events(events).assign(clicks=1.0)
    df.loc[3, "clicks"] = 1e200  # finite, but its square (the variance) is inf
    df.to_csv(events, index=False)
    res = runner.invoke(
        app, ["analyze", str(events), "--out", str(tmp_path / "o"), "--metrics", "clicks"]
    )
    assert isinstance(res.exception, LearnopsError), res.output
    assert "too large to analyze" in str(res.exception)


# --- issue 15 / 14: SRM plan, sequential looks, decisions tables, the A/A harness ---


def _planned_events(path, split, n=1500, seed=0, lift=0.0):
    rng = np.random.default_rng(seed)
    arms = np.array(list(split))
    g = arms[rng.choice(len(arms), n, p=list(split.values()))]
    k = rng.integers(1, 5, n)
    lid = np.repeat(np.arange(n), k)
    u = rng.normal(0.6, 0.1, n) + lift * (g == "ml")
    df = pd.DataFrame(
        {
            "learner_id": lid.astype(str),
            "group": g[lid],
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(lid, unit="min"),
            "engagement": np.clip(u[lid] + rng.normal(0, 0.05, lid.size), 0, 1),
            "accuracy": rng.uniform(size=lid.size),
            "success": (rng.uniform(size=lid.size) < 0.6).astype(float),
            "attempted": 4.0,
            "correct": rng.binomial(4, 0.6, lid.size).astype(float),
        }
    )
    df.to_csv(path, index=False)
    return df


def test_default_flags_do_not_test_equal_shares_and_planned_split_catches_skew(tmp_path):
    ok = tmp_path / "ok.csv"
    _planned_events(ok, {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2})
    res = runner.invoke(app, ["analyze", str(ok), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    assert not data["srm"]["mismatch"] and data["srm"]["checked"] is False
    assert "SRM not checked" in res.output
    skew = tmp_path / "skew.csv"
    _planned_events(skew, {"ml": 0.5, "gpt4": 0.3, "hybrid": 0.2}, seed=1)
    split = "ml=0.4,gpt4=0.4,hybrid=0.2"
    res = runner.invoke(
        app, ["analyze", str(skew), "--out", str(tmp_path / "b"), "--planned-split", split]
    )
    data = json.loads((tmp_path / "b" / "results.json").read_text())
    assert data["srm"]["mismatch"] and data["reason"] == "srm"
    assert data["srm"]["plan_source"] == "--planned-split"


def test_looks_sequential_and_ratio_metrics(tmp_path):
    ev = tmp_path / "ev.csv"
    _planned_events(ev, {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}, lift=0.05)
    args = ["analyze", str(ev), "--out", str(tmp_path / "o"), "--looks", "5",
            "--ratio-metrics", "acc=correct/attempted", "--correction", "bh"]  # fmt: skip
    for extra, method in (([], "fixed"), (["--sequential"], "sequential")):
        res = runner.invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        data = json.loads((tmp_path / "o" / "results.json").read_text())
        assert data["method"] == method and data["correction"] == "bh"
        assert [lk["look"] for lk in data["looks"]] == [1, 2, 3, 4, 5]
        assert data["looks"][-1]["n_learners"] == 1500
        comp = data["looks"][0]["comparisons"][0]
        assert set(comp) >= {"metric", "treatment", "diff", "ci_low", "ci_high", "p_value",
                             "significant"}  # fmt: skip
        assert {c["metric"] for c in data["comparisons"]} == {
            "accuracy", "engagement", "success", "acc"
        }  # fmt: skip
        assert data["winner"] == "ml"
        assert f"5 looks ({method})" in res.output


def test_analyze_accepts_the_pipelines_decisions_table(tmp_path):
    from test_ab_analysis import make_decisions

    path = tmp_path / "decisions.parquet"
    make_decisions(400, seed=1).to_parquet(path)
    res = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {c["metric"] for c in data["comparisons"]} == {"accuracy", "engagement", "success"}
    # the simulator's experiment: its plan (40/40/20) is known, so SRM is checked
    assert data["srm"]["checked"] and not data["srm"]["mismatch"]
    assert data["srm"]["planned_split"] == pytest.approx({"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2})


def test_aa_command_reports_rates_per_method_and_metric(tmp_path):
    ev = tmp_path / "ev.csv"
    _planned_events(ev, {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}, n=400)
    res = runner.invoke(
        app,
        ["aa", str(ev), "--runs", "6", "--looks", "4", "--metrics", "engagement",
         "--ratio-metrics", "acc=correct/attempted", "--out", str(tmp_path / "aa"),
         "--planned-split", "ml=0.4,gpt4=0.4,hybrid=0.2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "FPR" in res.output and "sequential" in res.output and "fixed" in res.output
    data = json.loads((tmp_path / "aa" / "aa.json").read_text())
    assert data["runs"] == 6 and data["looks"] == 4
    rows = {(r["method"], r["metric"]) for r in data["summary"]}
    assert rows == {(m, x) for m in ("fixed", "sequential") for x in ("engagement", "acc")}
    for r in data["summary"]:
        assert 0 <= r["fpr"] <= 1 and 0 <= r["coverage_all_looks"] <= r["coverage_last"] <= 1
    assert set(data["overall"]) == {"fixed", "sequential"}
