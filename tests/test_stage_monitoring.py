"""The monitoring stage: the time split, the metrics file without wall-clock values, latency in
the logged latencies, and the notebook's tables against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_params
from scipy import stats

SIMULATE = {"n_learners": 80, "n_items": 20}  # TINY's modules and days


@pytest.fixture(scope="module")
def result(tmp_path_factory, own_store):
    from learnops.data.simulate import simulate_to_store
    from learnops.stages import export, monitoring

    root = tmp_path_factory.mktemp("monitoring_stage")
    params = tiny_params(root, simulate=SIMULATE, export={"last_days": None, "min_data_points": 10})
    simulate_to_store(params)
    export.run(params)
    return root, params, monitoring.run(params)


def test_time_split(result):
    _, _, res = result
    n = len(res.decisions)
    assert len(res.reference) == round(0.7 * n) and len(res.recent) == n - len(res.reference)
    assert res.reference["timestamp"].max() <= res.recent["timestamp"].min()
    assert res.split["decisions"].tolist() == [len(res.reference), len(res.recent)]


def test_metrics_file_is_deterministic(result):
    from learnops.stages import monitoring

    root, params, res = result
    path = root / "reports/metrics/monitoring.json"
    text = path.read_text()
    metrics = json.loads(text)
    recent = res.recent
    assert metrics["n_decisions"] == len(recent)
    assert metrics["summary"]["ml_usage"] == pytest.approx((recent["decided_by"] == "ml").mean())
    assert len(metrics["drift"]["features"]) == 18
    assert len(metrics["rolling"]) == len(res.report["rolling"])
    assert metrics["drift"]["method"] == res.drift_result.method
    assert metrics["drift"]["dataset_drift"] == res.drift_result.dataset_drift
    monitoring.run(params)
    assert path.read_text() == text  # a rerun writes the same bytes


def test_logged_latency_is_a_metric(result):
    root, _, res = result
    metrics = json.loads((root / "reports/metrics/monitoring.json").read_text())
    ml = res.recent.loc[res.recent["decided_by"] == "ml", "latency_ms"]
    assert metrics["summary"]["ml_latency_p95_ms"] == pytest.approx(np.quantile(ml, 0.95))
    assert metrics["targets"]["latency_ms"] == res.targets["latency_ms"]
    assert all("latency_p95_ms" in r for r in metrics["by_version"])


def test_drift_and_alerts(result):
    from learnops.monitoring import metrics as mon
    from learnops.monitoring.drift import drift_test

    _, params, res = result
    ref, cur = res.reference["engagement"], res.recent["engagement"]
    row = res.drift.set_index("feature").loc["engagement"]
    ks = stats.ks_2samp(ref, cur)
    assert row["ks_stat"] == pytest.approx(ks.statistic)
    # the same rule and settings as the CLI and check_alerts
    m = params.monitor
    again = drift_test(
        res.reference, res.recent, alpha=m.alpha, min_n=m.min_n, permutations=m.permutations,
        correction=m.correction, cluster=m.cluster, seed=m.seed,
    )  # fmt: skip
    assert again.features["p_value"].tolist() == res.drift["ks_pvalue"].tolist()
    top = res.drift.sort_values("ks_stat", ascending=False)["feature"].head(6).tolist()
    assert res.top_drifted == top
    expected = mon.check_alerts(res.recent, res.reference, params=params)
    assert res.alerts_table["metric"].tolist() == [a.metric for a in expected]
    drifted = set(res.drift.loc[res.drift["drifted"], "feature"])
    assert set(res.alerts_table["feature"].dropna()) == drifted
    assert (res.drift.loc[res.drift["drifted"], "p_adjusted"] <= res.alpha).all()
    assert [a["metric"] for a in res.metrics["alerts"]] == [a.metric for a in expected]
    assert list(res.by_version.index) == sorted(res.by_version.index)
    assert res.drift_summary.loc["verdict", "value"] == res.drift_result.status


def test_drift_plot_copes_with_insufficient_data(result):
    import matplotlib

    matplotlib.use("Agg")
    from learnops.monitoring import metrics as mon
    from learnops.monitoring import plots

    _, _, res = result
    few = mon.drift_report(res.reference, res.recent.head(5))
    assert few["ks_pvalue"].isna().all() and not few["drifted"].any()
    fig = plots.drift_bars(few, alpha=res.alpha)
    assert "untested" in fig.axes[0].get_title()
