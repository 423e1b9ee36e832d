"""The monitoring stage: the time split, the metrics file without wall-clock values, latency in
the timings, and the notebook's tables against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

PARAMS = """seed: 5
simulate: {n_learners: 80, n_items: 20, n_modules: 3, days: 30}
export: {last_days: null, min_data_points: 10}
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from learnops.config import load_params
    from learnops.data.simulate import simulate_to_store
    from learnops.stages import export, monitoring

    root = tmp_path_factory.mktemp("monitoring_stage")
    (root / "params.yaml").write_text(PARAMS)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LEARNOPS_DB_URL", raising=False)
        params = load_params(root / "params.yaml")
        simulate_to_store(params)
        export.run(params)
        return root, params, monitoring.run(params)


def test_time_split(result):
    _, _, res = result
    n = len(res.decisions)
    assert len(res.reference) == round(0.7 * n) and len(res.recent) == n - len(res.reference)
    assert res.reference["timestamp"].max() <= res.recent["timestamp"].min()
    assert res.split["decisions"].tolist() == [len(res.reference), len(res.recent)]


def test_metrics_file_is_deterministic_and_free_of_wall_clock(result):
    from learnops.stages import monitoring

    root, params, res = result
    path = root / "reports/metrics/monitoring.json"
    text = path.read_text()
    for word in ("latency", "seconds", "duration"):
        assert word not in text
    metrics = json.loads(text)
    recent = res.recent
    assert metrics["n_decisions"] == len(recent)
    assert metrics["summary"]["ml_usage"] == pytest.approx((recent["decided_by"] == "ml").mean())
    assert len(metrics["drift"]) == 18 and len(metrics["rolling"]) == len(res.report["rolling"])
    monitoring.run(params)
    assert path.read_text() == text  # a rerun writes the same bytes


def test_latency_goes_to_the_timings(result):
    root, _, res = result
    timings = json.loads((root / "reports/timings/monitoring.json").read_text())
    ml = res.recent.loc[res.recent["decided_by"] == "ml", "latency_ms"]
    assert timings["summary"]["ml_latency_p95_ms"] == pytest.approx(np.quantile(ml, 0.95))
    assert timings["targets"] == {"latency_ms": res.targets["latency_ms"]}
    assert [r["window"] for r in timings["rolling"]] == [r["window"] for r in res.report["rolling"]]
    assert all("latency_p95_ms" in r for r in timings["by_version"])


def test_drift_and_alerts(result):
    from learnops.monitoring import metrics as mon

    _, params, res = result
    ref, cur = res.reference["engagement"], res.recent["engagement"]
    row = res.drift.set_index("feature").loc["engagement"]
    ks = stats.ks_2samp(ref, cur)
    assert row["ks_stat"] == pytest.approx(ks.statistic) and row["ks_pvalue"] == pytest.approx(
        ks.pvalue
    )
    top = res.drift.sort_values("psi", ascending=False)["feature"].head(6).tolist()
    assert res.top_drifted == top
    expected = mon.check_alerts(res.recent, res.reference, params=params)
    assert res.alerts_table["metric"].tolist() == [a.metric for a in expected]
    drifted = set(res.drift.loc[res.drift["drifted"], "feature"])
    assert set(res.alerts_table["feature"].dropna()) == drifted
    non_clock = [a.as_dict() for a in expected if "latency" not in a.metric]
    assert [a["metric"] for a in res.metrics["alerts"]] == [a["metric"] for a in non_clock]
    assert list(res.by_version.index) == sorted(res.by_version.index)


def test_split_wall_clock():
    from learnops.stages.monitoring import split_wall_clock

    report = {
        "n_decisions": 3,
        "targets": {"accuracy": 0.8, "latency_ms": 100},
        "summary": {"ml_usage": 0.5, "latency_p95_ms": 12.0},
        "rolling": [{"window": "w1", "n": 2, "latency_p50_ms": 1.0}, {"window": "w2", "n": 1}],
        "drift": [{"feature": "a", "psi": 0.1}],
        "alerts": [{"metric": "ml_latency_p95_ms"}, {"metric": "ml_usage"}],
    }
    metrics, clock = split_wall_clock(report)
    assert metrics == {
        "n_decisions": 3,
        "targets": {"accuracy": 0.8},
        "summary": {"ml_usage": 0.5},
        "rolling": [{"window": "w1", "n": 2}, {"window": "w2", "n": 1}],
        "drift": [{"feature": "a", "psi": 0.1}],
        "alerts": [{"metric": "ml_usage"}],
    }
    assert clock == {
        "targets": {"latency_ms": 100},
        "summary": {"latency_p95_ms": 12.0},
        "rolling": [{"window": "w1", "latency_p50_ms": 1.0}],
        "alerts": [{"metric": "ml_latency_p95_ms"}],
    }
