"""The drift rule (permutation KS, whole learners permuted, Holm): false alarms on identical
distributions stay near alpha, a real shift is found, too little data is not an alarm, the old
PSI rule no longer alarms alone, and `learnops monitor drift` (JSON shape, exit codes)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import binom
from typer.testing import CliRunner

from learnops.config import MonitorConfig, Params
from learnops.contracts import FEATURES
from learnops.monitoring import metrics as mon
from learnops.monitoring.cli import app
from learnops.monitoring.drift import (
    adjust_pvalues,
    drift_gauges,
    drift_test,
    permutation_ks,
    psi,
)

runner = CliRunner()
FAST = {"permutations": 399, "min_n": 50}  # ≥ 18/alpha − 1: Holm can fire
POWER = {**FAST, "permutations": 999}  # p floor 0.001: room for Holm × 18


@pytest.fixture(scope="module")
def population():
    """~9k simulated decisions of 600 learners, with a by-learner window sampler."""
    from learnops.config import SimulateConfig
    from learnops.data.simulate import simulate

    d = simulate(SimulateConfig(n_learners=600), 21).decisions.reset_index(drop=True)
    groups = list(d.groupby("learner_hash").indices.values())

    def window(rng, n, exclude=frozenset()):
        rows, used = [], set()
        for i in rng.permutation(len(groups)):
            if i in exclude:
                continue
            rows.extend(groups[i].tolist())
            used.add(int(i))
            if len(rows) >= n:
                break
        return d.iloc[rows[:n]].reset_index(drop=True), used

    return d, window


def test_false_alarm_rate_on_identical_distributions(population):
    """A/A windows drawn by learner: the rule fires at about alpha; the old PSI rule and a
    row-level test (rows taken as independent) fire far more often."""
    _, window = population
    rng = np.random.default_rng(0)
    runs, fired, fired_rows, fired_psi = 20, 0, 0, 0
    for run in range(runs):
        ref, used = window(rng, 900)
        cur, _ = window(rng, 150 if run % 2 else 400, used)
        fired += drift_test(ref, cur, seed=run, **FAST).dataset_drift
        fired_rows += drift_test(ref, cur, seed=run, cluster=None, **FAST).dataset_drift
        fired_psi += any(psi(ref[f], cur[f]) > 0.2 for f in FEATURES)
    # P(X >= 5 | n=20, p=0.05) ≈ 0.003: a real rate near alpha passes, a broken one does not
    assert fired <= 4, fired
    assert binom.sf(fired - 1, runs, 0.05) > 0.001
    assert fired_rows >= 10 and fired_psi >= 10  # what the learner permutation protects from


def test_power_against_a_shift(population):
    _, window = population
    rng = np.random.default_rng(1)
    d = population[0]
    sd = d["avg_response_time_s"].std()
    hits = 0
    for run in range(5):
        ref, used = window(rng, 1500)
        cur, _ = window(rng, 1500, used)
        cur["avg_response_time_s"] += 0.3 * sd
        res = drift_test(ref, cur, seed=run, **POWER)
        hits += res.dataset_drift and "avg_response_time_s" in res.drifted_features
        assert res.status in {"drift", "ok"}
    assert hits >= 4


def test_insufficient_data_is_not_an_alarm(population):
    d, _ = population
    cur = d.iloc[:20].copy()
    cur["engagement"] = 0.0  # an enormous shift, but 20 rows < min_n
    res = drift_test(d.iloc[1000:3000], cur, **FAST)
    assert res.status == "insufficient_data" and not res.dataset_drift
    doc = res.as_dict()
    assert all(f["p_value"] is None and f["drifted"] is False for f in doc["features"])
    assert mon.check_alerts(cur, d.iloc[1000:3000], min_decisions=10**6) == []
    assert drift_gauges(d.iloc[1000:3000], cur)[0] == ("recent_accuracy", None, False)


def test_old_psi_rule_alone_raises_no_alarm(population):
    """A small same-distribution window whose PSI exceeds 0.2 (the old alarm) gets no alert."""
    _, window = population
    rng = np.random.default_rng(5)
    for _ in range(20):
        ref, used = window(rng, 1000)
        cur, _ = window(rng, 60, used)
        report = mon.drift_report(ref, cur, params=MonitorConfig(**FAST))
        if (report["psi"] > 0.2).any() and not report["drifted"].any():
            break
    else:
        pytest.fail("no A/A window with PSI > 0.2 found")
    alerts = mon.check_alerts(cur, ref, monitor=MonitorConfig(**FAST), min_decisions=10**6)
    assert [a for a in alerts if a.metric.startswith("feature_drift")] == []


def test_permutation_ks_matches_scipy_statistic_and_is_exact_with_ties():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 6, 300).astype(float)  # heavy ties, like consecutive_errors
    cur = rng.integers(0, 6, 120).astype(float)
    values = np.r_[ref, cur]
    is_cur = np.r_[np.zeros(300, bool), np.ones(120, bool)]
    units = np.arange(420)
    labels = rng.permuted(np.tile(is_cur, (999, 1)), axis=1)
    stat, p = permutation_ks(values, is_cur, units, labels)
    assert stat == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert 1 / 1000 <= p <= 1
    # null p-values of a tied discrete feature are ~uniform (not conservative like scipy's)
    ps = []
    split = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    for s in range(60):
        r = np.random.default_rng(100 + s)
        pooled = r.integers(0, 4, 400).astype(float)
        lab = r.permuted(np.tile(split, (199, 1)), axis=1)
        ps.append(permutation_ks(pooled, split, np.arange(400), lab)[1])
    assert 0.3 < np.mean(ps) < 0.7


def test_too_few_permutations_are_refused(population):
    from learnops.errors import LearnopsError

    d, _ = population
    with pytest.raises(LearnopsError, match="at least 359"):
        drift_test(d.iloc[:500], d.iloc[500:900], permutations=199)


def test_adjusted_pvalues_match_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.04, 0.03, 0.5, 0.0105, 0.2])
    for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
        assert adjust_pvalues(p, ours) == pytest.approx(multipletests(p, method=theirs)[1])


def test_learner_units_and_determinism(population):
    d, _ = population
    ref, cur = d.iloc[:1200], d.iloc[1200:1700]
    a = drift_test(ref, cur, seed=4, **FAST)
    b = drift_test(ref, cur, seed=4, **FAST)
    assert a.unit == "learner_hash" and a.n_reference_units == ref["learner_hash"].nunique()
    pd.testing.assert_frame_equal(a.features, b.features)
    rows = drift_test(ref.drop(columns="learner_hash"), cur, **FAST)
    assert rows.unit == "row" and rows.n_reference_units == len(ref)
    assert mon.drift_result(ref, cur, Params(monitor=FAST)).features.equals(
        drift_test(ref, cur, **FAST).features
    )


# -- the command line ---------------------------------------------------------------------------
@pytest.fixture
def tables(population, tmp_path):
    d, _ = population
    ref = tmp_path / "ref.parquet"
    cur = tmp_path / "cur.csv"
    d.iloc[:1500].to_parquet(ref)
    shifted = d.iloc[1500:2500].copy()
    shifted["engagement"] = (shifted["engagement"] - 0.3).clip(0, 1)
    shifted[[*FEATURES, "learner_hash", "action"]].to_csv(cur, index=False)
    return tmp_path, ref, cur


def test_cli_json_shape_and_exit_codes(tables):
    tmp, ref, cur = tables
    out = tmp / "drift.json"
    args = ["drift", "--reference", str(ref), "--current", str(cur), "--permutations", "399"]
    done = runner.invoke(app, [*args, "--json", str(out)])
    assert done.exit_code == 0, done.output
    assert "engagement" in done.output and "DRIFT" in done.output
    doc = json.loads(out.read_text())
    assert {"dataset_drift", "method", "n_reference", "n_current", "features", "status"} <= set(doc)
    assert doc["dataset_drift"] is True and doc["status"] == "drift"
    assert doc["n_reference"] == 1500 and doc["n_current"] == 1000
    assert [f["feature"] for f in doc["features"]] == list(FEATURES)
    for f in doc["features"]:
        assert {"feature", "statistic", "p_value", "drifted", "psi"} <= set(f)
    eng = next(f for f in doc["features"] if f["feature"] == "engagement")
    assert eng["drifted"] is True and eng["p_value"] <= 0.01
    # no drift: still exit 0
    same = runner.invoke(app, ["drift", "--reference", str(ref), "--current", str(ref)])
    assert same.exit_code == 0 and "no drift" in same.output
    # too few rows: exit 0, insufficient data
    few = tmp / "few.csv"
    pd.read_csv(cur).head(10).to_csv(few, index=False)
    small = runner.invoke(app, ["drift", "--reference", str(ref), "--current", str(few)])
    assert small.exit_code == 0 and "insufficient data" in small.output


def test_cli_bad_input_exits_2(tables):
    tmp, ref, cur = tables
    bad = tmp / "bad.csv"
    pd.read_csv(cur).drop(columns=["hour_of_day", "ability"]).to_csv(bad, index=False)
    done = runner.invoke(app, ["drift", "--reference", str(ref), "--current", str(bad)])
    assert done.exit_code == 2
    assert "missing 2 of the 18 feature column(s): hour_of_day, ability" in done.output
    for argv in (
        ["--current", str(tmp / "nope.csv")],
        ["--current", str(cur), "--alpha", "2"],
        ["--current", str(cur), "--cluster", "no_such_column"],
    ):
        res = runner.invoke(app, ["drift", "--reference", str(ref), *argv])
        assert res.exit_code == 2, argv


def test_registered_in_learnops_cli():
    from learnops.cli import _SUBAPPS

    assert _SUBAPPS["monitor"][0] == "learnops.monitoring.cli"
