"""The dashboard's data (GET /api/mlops/dashboard) and page (GET /dashboard): numbers checked
against direct computations on the stored decisions, learner-level CIs against scipy, the token
rules, no learner ids, stored alerts, and the extra /metrics gauges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import Params  # noqa: E402
from learnops.contracts import FEATURES  # noqa: E402
from learnops.hashing import learner_hash  # noqa: E402
from learnops.lifecycle.registry import Registry  # noqa: E402
from learnops.serve import RuleTeacher, Tokens, create_app  # noqa: E402
from learnops.serve.dashboard import learner_ci  # noqa: E402

ADMIN, USER = "admin-dash-token", "client-dash-token"


@pytest.fixture(scope="module")
def table():
    from learnops.data.simulate import simulate_decisions_table

    return simulate_decisions_table(600, 4)


@pytest.fixture()
def model_dir(tmp_path):
    """A registered artifact directory (never loaded as a model: these tests need the registry's
    view only; the server then serves the fallback)."""
    d = tmp_path / "artifact"
    d.mkdir()
    (d / "metadata.json").write_text("{}")
    return d


def _app(tmp_path, tokens=None, model_dir=None):
    """The app; with ``model_dir``, an mlp version registered and deployed after the start (the
    server looks the registry up once an hour here, so it never loads it: fallback only)."""
    params = Params(root=tmp_path, serve={"epsilon": 0.0})
    app = create_app(
        params,
        tokens=tokens if tokens is not None else Tokens(),
        fallback=RuleTeacher(sample=False),
        check_interval=3600.0,
    )
    if model_dir is not None:
        reg = Registry(app.state.store, params.path(params.paths.models_dir) / "registry")
        v = reg.start("mlp", data_count=600)
        reg.complete("mlp", v.version, model_dir, {"accuracy": 0.8125})
        reg.deploy("mlp", v.version)
    return TestClient(app)


def _traffic(client, table, n=90, learners=25, outcome_every=1, headers=None):
    ids = []
    for i, row in enumerate(table.head(n).to_dict("records")):
        body = {f: float(row[f]) for f in FEATURES}
        body["learner_id"] = f"secret-learner-{i % learners}"
        r = client.post("/decide", json=body, headers=headers or {})
        assert r.status_code == 200, r.text
        ids.append(r.json()["decision_id"])
    for i, d in enumerate(ids):
        if i % outcome_every == 0:
            row = table.iloc[i]
            out = {
                "decision_id": d,
                "next_accuracy": float(np.nan_to_num(row["next_accuracy"], nan=0.5)),
                "next_engagement": float(np.nan_to_num(row["next_engagement"], nan=0.5)),
            }
            assert client.post("/outcomes", json=out, headers=headers or {}).status_code == 200
    assert client.app.state.decision_log.flush()
    return ids


def _fresh(client, **params):
    cache = getattr(client.app.state, "dashboard", None)
    if cache is not None:  # a fresh payload, not the one cached for PAYLOAD_TTL_S
        cache.payloads.clear()
    r = client.get(
        "/api/mlops/dashboard", params=params, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_learner_ci_is_the_student_t_interval_over_learners():
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.beta(2, 3, size=37)
    got = learner_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert got["mean"] == pytest.approx(x.mean())
    assert (got["ciLow"], got["ciHigh"]) == (pytest.approx(lo), pytest.approx(hi))
    assert got["learners"] == 37
    one = learner_ci([0.4])
    assert one["mean"] == 0.4 and one["ciLow"] is None
    assert learner_ci([])["mean"] is None


def test_learner_ci_covers_the_true_mean_about_95_percent():
    """Simulation with known truth: 400 samples of 30 learners from Beta(2, 5) (mean 2/7)."""
    rng = np.random.default_rng(20261204)
    hits = 0
    for _ in range(400):
        ci = learner_ci(rng.beta(2, 5, size=30))
        hits += ci["ciLow"] <= 2 / 7 <= ci["ciHigh"]
    assert 0.91 <= hits / 400 <= 0.98


def test_payload_matches_the_stored_decisions(tmp_path, table):
    client = _app(tmp_path)
    admin = {"Authorization": "Bearer x"}  # no tokens configured: open, the header is ignored
    r = client.post(
        "/api/mlops/experiments",
        json={"name": "dash1", "arms": {"ml": 0.5, "gpt4": 0.5}},
        headers=admin,
    )
    assert r.status_code == 401  # starting experiments stays admin-only
    from learnops.ab.experiments import start_experiment

    start_experiment(client.app.state.store, "dash1", {"ml": 0.5, "gpt4": 0.5})
    client.app.state.serve.experiments.refresh()
    _traffic(client, table, n=90, learners=25, outcome_every=3)
    d = _fresh(client)
    logged = client.app.state.store.read_decisions()
    assert d["decisions"]["total"] == len(logged) == 90
    per_bucket = d["bucketSeconds"] / 60.0
    by_decider = {k: round(sum(v) * per_bucket) for k, v in d["decisions"]["byDecider"].items()}
    assert by_decider == logged["decided_by"].value_counts().to_dict()
    by_arm = {k: round(sum(v) * per_bucket) for k, v in d["decisions"]["byArm"].items()}
    assert by_arm == logged["ab_group"].value_counts().to_dict()
    assert d["mlUsage"]["overall"] == pytest.approx((logged["decided_by"] == "ml").mean())
    assert d["latency"]["overall"]["p95"] == pytest.approx(np.quantile(logged["latency_ms"], 0.95))

    # outcomes by arm: the mean of the learners' means, t-interval over learners
    with_outcome = logged.dropna(subset=["next_accuracy"])
    for arm in d["outcomes"]["arms"]:
        rows = with_outcome[with_outcome["ab_group"] == arm["arm"]]
        means = rows.groupby("learner_hash")["next_accuracy"].mean()
        ref = learner_ci(means.to_numpy())
        got = arm["metrics"]["accuracy"]
        assert got["learners"] == len(means) > 1
        assert got["mean"] == pytest.approx(means.mean())
        assert got["ciLow"] == pytest.approx(ref["ciLow"])
        assert arm["learners"] == logged[logged["ab_group"] == arm["arm"]]["learner_hash"].nunique()

    exp = d["experiment"]
    assert exp["name"] == "dash1" and d["outcomes"]["scope"] == "experiment dash1"
    learners = {a["arm"]: a["learners"] for a in exp["arms"]}
    assert learners == logged.groupby("ab_group")["learner_hash"].nunique().to_dict()
    from scipy import stats

    obs = np.array([learners["ml"], learners["gpt4"]])
    assert exp["srm"]["pValue"] == pytest.approx(stats.chisquare(obs).pvalue)


def test_no_learner_ids_or_hashes_anywhere(tmp_path, table):
    client = _app(tmp_path)
    _traffic(client, table, n=40, learners=10)
    text = json.dumps(_fresh(client)) + client.get("/dashboard").text
    for i in range(10):
        lid = f"secret-learner-{i}"
        assert lid not in text and learner_hash(lid) not in text


def test_tokens_client_or_admin_in_the_header_never_the_url(tmp_path):
    client = _app(tmp_path, tokens=Tokens.of(admin=[ADMIN], user=[USER]))
    url = "/api/mlops/dashboard"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(url, params={"token": USER}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Bearer {USER}"}).status_code == 200
    assert client.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    admin_only = _app(tmp_path / "a", tokens=Tokens.of(admin=[ADMIN]))
    assert admin_only.get(url).status_code == 401
    assert admin_only.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    # the page and its script load without a token and carry no data
    page = client.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "http" not in page.text.split("<body>")[1]
    js = client.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200 and "sessionStorage" in js.text
    assert "Authorization" in js.text and "token=" not in js.text
    assert client.get("/dashboard/static/../app.py").status_code == 404
    assert client.get("/dashboard/static/secret.txt").status_code == 404
    assert (
        client.get(
            url, params={"window": 0}, headers={"Authorization": f"Bearer {USER}"}
        ).status_code
        == 422
    )


def test_stored_alert_appears_and_models_and_gauges(tmp_path, table, model_dir):
    from learnops.monitoring.metrics import Alert, record_alerts

    client = _app(tmp_path, model_dir=model_dir)
    _traffic(client, table, n=35, learners=12)
    d = _fresh(client)
    assert not [a for a in d["alerts"] if a["source"] == "stored"]
    assert d["models"]["serving"] is None  # not loaded (see _app): the fallback serves
    prod = {m["model"]: m for m in d["models"]["production"]}
    assert prod["mlp"]["version"] == "v1" and prod["mlp"]["deployedAt"]
    assert prod["mlp"]["accuracy"] == pytest.approx(0.8125)
    assert prod["irt"]["version"] is None

    record_alerts(
        client.app.state.store,
        [
            Alert(
                "feature_drift",
                0.001,
                0.05,
                "feature hint_rate drifted (injected)",
                "v1",
                {"feature": "hint_rate"},
            )
        ],  # fmt: skip
    )
    d = _fresh(client)
    stored = [a for a in d["alerts"] if a["source"] == "stored"]
    assert len(stored) == 1 and stored[0]["message"] == "feature hint_rate drifted (injected)"
    assert stored[0]["feature"] == "hint_rate" and stored[0]["threshold"] == 0.05

    metrics = client.get("/metrics").text
    assert 'learnops_model_accuracy{model="mlp",version="v1"} 0.8125' in metrics
    p = client.app.state.params
    assert f'learnops_target{{name="ml_usage"}} {p.evaluate.targets.ml_usage!r}' in metrics
    assert f'learnops_target{{name="error_rate"}} {p.serve.max_error_rate!r}' in metrics


def test_live_alerts_follow_the_targets():
    from learnops.serve.dashboard import live_alerts

    targets = {"mlUsage": 0.7, "latencyMs": 100.0, "errorRate": 0.01}
    series = {
        "decisions": {"total": 50},
        "mlUsage": {"overall": 0.5},
        "latency": {"overall": {"p95": 150.0}},
    }
    features = [
        {"feature": "engagement", "drifted": True},
        {"feature": "hint_rate", "drifted": False},
    ]
    drift = {"status": "drift", "alpha": 0.05, "features": features}
    errors = {"rate": 0.02, "decisions": 50}
    got = {a["metric"]: a for a in live_alerts(series, drift, errors, targets)}
    assert set(got) == {"ml_usage", "latency_p95_ms", "dataset_drift", "error_rate"}
    assert "engagement" in got["dataset_drift"]["message"]
    assert "hint_rate" not in got["dataset_drift"]["message"]
    models = {"production": [{"model": "mlp", "version": "v4", "accuracy": 0.8}]}
    got = {a["metric"]: a for a in live_alerts(series, drift, errors, targets | {"accuracy": 0.85},
                                               models)}  # fmt: skip
    assert "v4" in got["model_accuracy"]["message"] and got["model_accuracy"]["value"] == 0.8
    fine = live_alerts(
        {
            "decisions": {"total": 50},
            "mlUsage": {"overall": 0.8},
            "latency": {"overall": {"p95": 20.0}},
        },  # fmt: skip
        {"status": "ok", "features": []},
        {"rate": 0.0, "decisions": 50},
        targets | {"accuracy": 0.85},
        {"production": [{"model": "mlp", "version": "v5", "accuracy": 0.9}]},
    )
    assert fine == []
    few = dict(series, decisions={"total": 5})
    assert [a["metric"] for a in live_alerts(few, {"status": "ok"}, errors, targets)] == [
        "error_rate"
    ]


def test_time_series_buckets_cover_the_window():
    from learnops.serve.dashboard import N_BUCKETS, time_series

    now = pd.Timestamp("2026-12-01 12:00:00", tz="UTC")
    ts = [now - pd.Timedelta(seconds=s) for s in (5, 30, 90, 1790)]
    df = pd.DataFrame(
        {
            "timestamp": ts,
            "decided_by": ["ml", "llm", "ml", "ml"],
            "ab_group": [None, None, "ml", "gpt4"],
            "latency_ms": [1.0, 2.0, 3.0, 4.0],
        }  # fmt: skip
    )
    s = time_series(df, now.to_pydatetime(), 30.0)
    assert len(s["buckets"]) == N_BUCKETS and s["bucketSeconds"] == 60.0
    assert s["decisions"]["byDecider"]["ml"][-1] == 1.0  # per minute, 60 s buckets
    assert s["decisions"]["byDecider"]["llm"][-1] == 1.0
    assert (
        s["decisions"]["byDecider"]["ml"][-2] == 1.0 and s["decisions"]["byDecider"]["ml"][0] == 1
    )
    assert s["decisions"]["byArm"]["hybrid"][-1] == 2.0  # no experiment: the default arm
    assert s["mlUsage"]["values"][-1] == 0.5 and s["mlUsage"]["values"][5] is None
    assert s["decisions"]["lastMinute"] == 2


def test_page_files_ship_as_package_data():
    """The page's files are installed with the package (pyproject package-data), not only in an
    editable checkout."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["learnops.serve"]
    static = root / "src" / "learnops" / "serve" / "static"
    files = sorted(p.name for p in static.iterdir())
    assert files == ["dashboard.css", "dashboard.html", "dashboard.js"]
    for name in files:
        assert any(fnmatch.fnmatch(f"static/{name}", p) for p in patterns), name
