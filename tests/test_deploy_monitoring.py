"""deploy/prometheus/alerts.yml and deploy/grafana/learnops.json: they name only series that a
live app's /metrics serves, the alert thresholds are those of params.yaml, and promtool (when
installed: .ci/run installs it) accepts the rules, passes their unit tests and parses every
Grafana query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import Params, load_params  # noqa: E402
from learnops.contracts import FEATURES  # noqa: E402
from learnops.serve import RuleTeacher, Tokens, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
GRAFANA = ROOT / "deploy" / "grafana" / "learnops.json"

#: PromQL functions, aggregations and keywords the files may use (anything else is a metric).
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "clamp_min", "clamp_max", "abs", "and", "or", "unless", "bool", "offset", "vector", "scalar",
    "time", "absent", "delta", "topk", "bottomk", "quantile_over_time", "avg_over_time",
    "max_over_time", "min_over_time",
}  # fmt: skip
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[str]:
    """Every series name a live app's /metrics serves (samples and declared families), after
    traffic, an experiment, a drift test and a registered model."""
    from learnops.ab.experiments import start_experiment
    from learnops.data.simulate import simulate_decisions_table
    from learnops.io import write_table
    from learnops.lifecycle.registry import Registry

    tmp = tmp_path_factory.mktemp("metrics")
    table = simulate_decisions_table(300, 6)
    params = Params(root=tmp, monitor={"permutations": 399, "min_n": 20}, serve={"epsilon": 0.1})
    write_table(params.path(params.paths.processed_dir) / "decisions.parquet", table)
    app = create_app(
        params, tokens=Tokens.of(admin=["a"]), fallback=RuleTeacher(), check_interval=3600.0
    )
    artifact = tmp / "artifact"
    artifact.mkdir()
    (artifact / "metadata.json").write_text("{}")
    reg = Registry(app.state.store, params.path(params.paths.models_dir) / "registry")
    v = reg.start("mlp", data_count=300)
    reg.complete("mlp", v.version, artifact, {"accuracy": 0.9})
    reg.deploy("mlp", v.version)
    start_experiment(app.state.store, "metrics_exp", {"ml": 0.5, "gpt4": 0.5})
    app.state.serve.experiments.refresh()
    client = TestClient(app)
    for i, row in enumerate(table.head(60).to_dict("records")):
        body = {f: float(row[f]) for f in FEATURES}
        body["learner_id"] = f"m-{i % 15}"
        assert client.post("/decide", json=body).status_code == 200
    app.state.serve.drift.compute()
    text = client.get("/metrics").text
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            names.update(name + s for s in _SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    assert "learnops_model_accuracy" in names and "learnops_feature_drifted" in names
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: identifiers outside strings, label matchers,
    ranges and grouping clauses that are not PromQL words."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e))
    return {w for w in words if w not in PROMQL_WORDS}


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _grafana_exprs() -> list[str]:
    dash = json.loads(GRAFANA.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_metric_names_parser():
    expr = 'sum by (le) (rate(learnops_x_bucket{decided_by="ml",a=~"b|c"}[5m])) / on() max(y_total)'
    assert metric_names(expr) == {"learnops_x_bucket", "y_total"}


def test_alert_rules_are_well_formed_and_name_served_series(served):
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert names == [
        "LearnopsLowMlUsage",
        "LearnopsHighLatency",
        "LearnopsLowModelAccuracy",
        "LearnopsFeatureDrift",
        "LearnopsHighErrorRate",
    ]
    for r in rules:
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"])
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert r["expr"].count("(") == r["expr"].count(")")
        used = metric_names(r["expr"])
        assert used and used <= served, (r["alert"], used - served)


def test_alert_thresholds_are_those_of_params_yaml():
    p = load_params(ROOT / "params.yaml")
    t = p.evaluate.targets
    expected = {
        "LearnopsLowMlUsage": ("<", t.ml_usage, f"{t.ml_usage:.0%}"),
        "LearnopsHighLatency": (">", t.latency_ms, f"{t.latency_ms:g} ms"),
        "LearnopsLowModelAccuracy": ("<", t.accuracy, f"{t.accuracy:.0%}"),
        "LearnopsHighErrorRate": (">", p.serve.max_error_rate, f"{p.serve.max_error_rate:.0%}"),
    }
    rules = {r["alert"]: r for r in _rules()}
    for name, (op, value, text) in expected.items():
        m = re.search(r"([<>])\s*([0-9.]+)\s*$", rules[name]["expr"].strip())
        assert m, name
        assert (m[1], float(m[2])) == (op, value), name
        assert (
            text
            in rules[name]["annotations"]["summary"] + rules[name]["annotations"]["description"]
        ), name
    drift = rules["LearnopsFeatureDrift"]
    assert drift["expr"].strip() == "learnops_feature_drifted == 1"  # the verdict at alpha
    assert f"monitor.alpha = {p.monitor.alpha:g}" in drift["annotations"]["description"]


def test_grafana_dashboard_is_valid_and_queries_only_served_series(served):
    dash = json.loads(GRAFANA.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}" and p["targets"], p["title"]
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert names and names <= served, (p["title"], names - served)
            assert t["expr"].count("(") == t["expr"].count(")")
            used |= names
    # the panels cover traffic, latency, errors, drift and the models
    for family in (
        "learnops_decisions_total",
        "learnops_arm_decisions_total",
        "learnops_decision_latency_ms_bucket",
        "learnops_errors_total",
        "learnops_feature_drift_p_value",
        "learnops_dataset_drift",
        "learnops_model_info",
        "learnops_model_accuracy",
        "learnops_target",
    ):
        assert family in used, family


promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (.ci/run installs it from Debian's prometheus package)",
)


@promtool
def test_promtool_checks_and_unit_tests_the_rules():
    out = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout
    out = subprocess.run(
        ["promtool", "test", "rules", RULES_TEST.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES_TEST.parent,
    )
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


@promtool
def test_promtool_parses_every_grafana_query(tmp_path):
    exprs = _grafana_exprs()
    rules = {
        "groups": [
            {
                "name": "grafana_queries",
                "rules": [{"record": f"grafana:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "grafana_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout
