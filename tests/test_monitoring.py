"""Monitoring: PSI (effect size) and the drift test, rolling metrics, alerts stored as
MonitoringMetric rows."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from learnops.config import Params
from learnops.contracts import ACTIONS
from learnops.data.store import MonitoringMetric
from learnops.monitoring import metrics as mon


def test_psi_hand_computed():
    ref = np.arange(100.0)  # quartile edges 24.75, 49.5, 74.25: 25% per bin
    cur = np.r_[np.full(50, 10.0), np.full(50, 30.0)]  # half in bin 1, half in bin 2, none after
    r, c, eps = 0.25, 0.5, 1e-4
    expected = 2 * (c - r) * math.log(c / r) + 2 * (eps - r) * math.log(eps / r)
    assert mon.psi(ref, cur, bins=4) == pytest.approx(expected)
    assert mon.psi(ref, ref, bins=4) == pytest.approx(0.0)
    # values beyond the reference range fall in the open outer bins
    assert mon.psi(ref, np.full(10, 1e9), bins=4) == pytest.approx(
        (1 - r) * math.log(1 / r) + 3 * (eps - r) * math.log(eps / r)
    )
    assert math.isnan(mon.psi([], [1.0]))


def test_drift_flags_the_shifted_feature_only():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000)})
    cur = pd.DataFrame({"a": rng.normal(1.0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    report = mon.drift_report(ref, cur, features=["a", "b"]).set_index("feature")
    assert report.loc["a", "drifted"] and not report.loc["b", "drifted"]
    assert report.loc["a", "psi"] > 0.2 > 0.05 > report.loc["b", "psi"]
    # permutation p-values: the floor 1/(B+1) for the shift, unremarkable without one
    assert report.loc["a", "ks_pvalue"] == pytest.approx(1 / 1000)
    assert report.loc["b", "p_adjusted"] > 0.05
    stat, p = mon.ks_test(ref["a"], cur["a"])
    assert stat == pytest.approx(report.loc["a", "ks_stat"]) and 0 <= p < 1e-10


@pytest.fixture(scope="module")
def decisions():
    from learnops.data.simulate import simulate_decisions_table

    df = simulate_decisions_table(600, 3).copy()
    start = datetime(2026, 10, 1, tzinfo=UTC)
    df["timestamp"] = [start + timedelta(hours=i) for i in range(len(df))]
    df["action"] = mon.best_action_proxy(df)  # every decision agrees with the proxy
    df["decided_by"] = "ml"
    df["model_version"] = "v1"
    df["latency_ms"] = 2.0
    df["confidence"] = 0.9
    return df


def test_rolling_and_version_metrics(decisions):
    df = decisions.copy()
    df.loc[df.index % 4 == 0, ["decided_by", "model_version", "latency_ms"]] = ["llm", "gpt4", 900]
    roll = mon.rolling_metrics(df, "1D")
    assert len(roll) == 25 and roll["n"].sum() == len(df)
    assert roll["ml_usage"].between(0.6, 0.9).all()
    assert (roll["ml_accuracy"] == 1.0).all() and (roll["ml_latency_p95_ms"] == 2.0).all()
    by_v = mon.metrics_by_version(df).set_index("version")
    assert set(by_v.index) == {"v1", "fallback"} and by_v.loc["v1", "ml_usage"] == 1.0
    both = mon.rolling_metrics(df, "7D", by_version=True)
    assert set(both["version"]) == {"v1", "fallback"}
    s = mon.summary_metrics(df)
    assert s["ml_usage"] == pytest.approx(0.75) and s["latency_p99_ms"] == pytest.approx(900)
    assert s["ml_next_engagement"] == pytest.approx(
        df.loc[df["decided_by"] == "ml", "next_engagement"].mean()
    )


def test_no_alerts_on_healthy_traffic(decisions):
    assert mon.check_alerts(decisions, decisions) == []


def test_alerts_with_thresholds_and_storage(decisions, store):
    df = decisions.copy()
    wrong = {a: ACTIONS[(i + 1) % len(ACTIONS)] for i, a in enumerate(ACTIONS)}
    df.loc[df.index < 200, "action"] = df.loc[df.index < 200, "action"].map(wrong)
    df.loc[df.index >= 300, "decided_by"] = "llm"
    df["latency_ms"] = 150.0
    recent = df.copy()
    recent["engagement"] = (recent["engagement"] - 0.3).clip(0, 1)
    alerts = mon.check_alerts(recent, decisions)
    by_metric = {a.metric: a for a in alerts}
    assert set(by_metric) == {"ml_usage", "ml_accuracy", "ml_latency_p95_ms", "feature_drift"}
    assert [a.labels["feature"] for a in alerts if a.metric == "feature_drift"] == ["engagement"]
    assert by_metric["feature_drift"].threshold == 0.05 and by_metric["feature_drift"].value <= 0.05
    assert by_metric["ml_usage"].value == pytest.approx(0.5)
    assert by_metric["ml_accuracy"].threshold == 0.85
    # thresholds are arguments; params targets replace the defaults
    assert not mon.check_alerts(recent, latency_ms_max=200, accuracy_min=0.3, ml_usage_min=0.4)
    params = Params(evaluate={"targets": {"latency_ms": 500, "accuracy": 0.1, "ml_usage": 0.1}})
    assert mon.check_alerts(recent, params=params) == []
    assert mon.record_alerts(store, alerts) == 4
    with store.session() as s:
        rows = s.query(MonitoringMetric).all()
        assert len(rows) == 4 and all(r.alert and r.message for r in rows)
        assert {r.model_version for r in rows} == {"v1"}


def test_time_split_and_report_json(decisions):
    ref, cur = mon.time_split(decisions.sample(frac=1, random_state=0), 0.7)
    assert len(ref) == 420 and ref["timestamp"].max() <= cur["timestamp"].min()
    report = mon.monitoring_report(cur, ref, window="1D")
    json.dumps(report, allow_nan=False)
    assert report["n_decisions"] == 180 and len(report["drift"]["features"]) == 18
    assert report["drift"]["status"] in {"ok", "drift"}
    assert report["drift"]["unit"] == "learner_hash"
    assert report["summary"]["ml_usage"] == 1.0
    # early vs late simulated traffic differs (learners progress): only drift alerts
    assert {a["metric"] for a in report["alerts"]} <= {"feature_drift"}
    drifted = {a["labels"]["feature"] for a in report["alerts"]}
    assert drifted == set(report["drift"]["drifted_features"])
    with pytest.raises(ValueError):
        mon.time_split(decisions, 1.0)
