"""HTTP API: decisions (ML / fallback), outcomes, auth, the admin MLOps API, hot swap, metrics."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import MlpConfig, Params  # noqa: E402
from learnops.contracts import ACTIONS, FEATURES  # noqa: E402
from learnops.data.store import EventStore, MonitoringMetric  # noqa: E402
from learnops.errors import NoTrainingData  # noqa: E402
from learnops.hashing import learner_hash  # noqa: E402
from learnops.lifecycle.registry import Registry  # noqa: E402
from learnops.serve import Tokens, create_app, hash_token  # noqa: E402

ADMIN, USER = "admin-secret-token", "user-secret-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SECRET_ID = "alice@example.com"


@pytest.fixture(scope="module")
def table():
    from learnops.data.simulate import simulate_decisions_table

    return simulate_decisions_table(3000, 5)


@pytest.fixture(scope="module")
def model_dir(table, tmp_path_factory):
    from learnops.mlp import save, train

    result = train(table, MlpConfig(epochs=3, hidden=(32, 16)), seed=2)
    return save(result, tmp_path_factory.mktemp("mlp") / "model")


def _body(table, i=0, learner=SECRET_ID, **extra):
    row = table.iloc[i]
    return {**{f: float(row[f]) for f in FEATURES}, "learner_id": learner, **extra}


def _params(tmp_path, threshold=0.6, epsilon=0.0):
    """No exploration by default: these tests check which policy decided."""
    return Params(
        root=tmp_path, mlp={"confidence_threshold": threshold}, serve={"epsilon": epsilon}
    )


def _register(params, model_dir, deploy=True):
    store = EventStore(params.db_url)
    reg = Registry(store, params.path(params.paths.models_dir) / "registry")
    v = reg.start("mlp", data_count=3000)
    reg.complete("mlp", v.version, model_dir, {"accuracy": 0.9})
    if deploy:
        reg.deploy("mlp", v.version)
    store.dispose()
    return v.version


def _client(params, **kwargs):
    from learnops.serve import RuleTeacher

    kwargs.setdefault("tokens", Tokens.of(admin=[ADMIN]))
    kwargs.setdefault("fallback", RuleTeacher(sample=False))  # the deterministic teacher
    return TestClient(create_app(params, **kwargs))


def test_no_model_every_decision_goes_to_the_fallback(tmp_path, table):
    from learnops.data.simulate import teacher_probabilities

    params = _params(tmp_path)
    client = _client(params)
    for i in range(5):
        r = client.post("/decide", json=_body(table, i, ab_test="t1", ab_group="ml"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["decided_by"] == "llm" and out["model_version"] == "rule-teacher"
        x = table.loc[[i], list(FEATURES)].to_numpy(float)
        assert out["action"] == ACTIONS[int(teacher_probabilities(x)[0].argmax())]
        assert set(out["probabilities"]) == set(ACTIONS)
        assert out["confidence"] == pytest.approx(max(out["probabilities"].values()))
        assert out["latency_ms"] >= 0 and len(out["decision_id"]) == 32
    assert client.app.state.decision_log.flush()
    logged = client.app.state.store.read_decisions()
    assert len(logged) == 5
    assert (logged["learner_hash"] == learner_hash(SECRET_ID)).all()
    assert (logged["decided_by"] == "llm").all()
    # no experiment runs: the client's claimed arm is ignored, the default policy served
    assert logged["ab_test"].isna().all() and logged["ab_group"].isna().all()
    assert (logged["propensity"] == 1.0).all() and not logged["explored"].any()
    assert logged["latency_ms"].notna().all() and logged["confidence"].notna().all()


def test_explain_adds_complete_attributions_and_only_on_request(tmp_path, table, model_dir):
    from learnops.mlp import explain, load

    params = _params(tmp_path, threshold=0.0)  # the model decides every time
    _register(params, model_dir)
    client = _client(params)
    plain = client.post("/decide", json=_body(table, 1)).json()
    assert "explanation" not in plain  # without ?explain the answer is unchanged
    out = client.post("/decide?explain=true", json=_body(table, 1)).json()
    assert set(out) == set(plain) | {"explanation"}
    items = out["explanation"]
    assert [set(d) for d in items] == [{"feature", "value", "attribution"}] * 5
    features = {f: float(table.iloc[1][f]) for f in FEATURES}
    full = explain(load(model_dir), features, out["action"])
    assert items == full.top(5)
    assert abs(full.delta) <= 0.01 * abs(full.logit - full.baseline_logit)
    assert client.post("/decide?explain=false", json=_body(table, 1)).json().keys() == plain.keys()


def test_a_model_set_artifact_is_served(tmp_path, table, model_dir):
    """An ensemble saved as one artifact and registered as one version: /decide answers with
    the mean of its members' calibrated probabilities, and explains the members' mean logit."""
    from learnops.mlp import load, predict, train
    from learnops.mlp.artifacts import save_set
    from learnops.mlp.ensemble import Ensemble

    single = load(model_dir)
    other = train(table, MlpConfig(epochs=2, hidden=(16,)), seed=7).model
    ens = Ensemble([single, other], [2, 7])
    set_dir = save_set(ens, tmp_path / "set")
    params = _params(tmp_path, threshold=0.0)
    _register(params, set_dir)
    client = _client(params)
    out = client.post("/decide?explain=true", json=_body(table, 3)).json()
    features = {f: float(table.iloc[3][f]) for f in FEATURES}
    want = predict(ens, features)
    assert out["decided_by"] == "ml" and out["action"] == want.action
    for a in ACTIONS:
        p1, p2 = predict(single, features), predict(other, features)
        mean = (p1.probabilities[a] + p2.probabilities[a]) / 2
        assert out["probabilities"][a] == pytest.approx(mean, abs=1e-6)
    full = ens.explain(features, out["action"])
    assert out["explanation"] == full.top(5)
    assert abs(full.delta) <= 0.01 * abs(full.logit - full.baseline_logit)


def test_invalid_features_get_422_with_field_errors(tmp_path, table):
    client = _client(_params(tmp_path))
    bad = _body(table)
    bad["recent_accuracy"] = 1.5
    r = client.post("/decide", json=bad)
    assert r.status_code == 422
    assert any(e["loc"][-1] == "recent_accuracy" for e in r.json()["detail"])
    missing = _body(table)
    del missing["engagement"]
    r = client.post("/decide", json=missing)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "engagement"
    assert client.post("/decide", json={**_body(table), "learner_id": ""}).status_code == 422
    assert client.post("/decide", json={**_body(table), "bogus": 1}).status_code == 422
    assert client.post("/decide", json={**_body(table), "hour_of_day": "x"}).status_code == 422


def test_ml_path_above_threshold_fallback_below(tmp_path, table, model_dir):
    from learnops.mlp import load, predict

    params = _params(tmp_path)
    version = _register(params, model_dir)
    client = _client(params)
    model = load(model_dir)
    seen = set()
    for i in range(60):
        out = client.post("/decide", json=_body(table, i)).json()
        pred = predict(model, {f: float(table.iloc[i][f]) for f in FEATURES})
        if pred.confidence >= 0.6:
            assert (out["decided_by"], out["model_version"]) == ("ml", version)
            assert out["action"] == pred.action
            assert out["confidence"] == pytest.approx(pred.confidence)
        else:
            assert out["decided_by"] == "llm"
        seen.add(out["decided_by"])
    assert "ml" in seen

    class Recorder:
        name = "test-llm"
        calls = 0

        def decide(self, features):
            Recorder.calls += 1
            return "take_break", {a: (1.0 if a == "take_break" else 0.0) for a in ACTIONS}

    unsure = _client(_params(tmp_path, threshold=1.0), fallback=Recorder())
    outs = [unsure.post("/decide", json=_body(table, i)).json() for i in range(10)]
    low = [o for o in outs if o["decided_by"] == "llm"]
    assert len(low) >= 9 and Recorder.calls == len(low)
    assert all(o["action"] == "take_break" and o["model_version"] == "test-llm" for o in low)


def test_failing_fallback_without_model_is_503(tmp_path, table):
    class Broken:
        def decide(self, features):
            raise RuntimeError("LLM down")

    client = _client(_params(tmp_path), fallback=Broken())
    assert client.post("/decide", json=_body(table)).status_code == 503


def test_outcomes(tmp_path, table):
    client = _client(_params(tmp_path))
    did = client.post("/decide", json=_body(table)).json()["decision_id"]
    outcome = {
        "decision_id": did,
        "next_accuracy": 0.8,
        "next_engagement": 0.7,
        "session_completed": True,
        "total_session_time_ms": 120000,
    }
    r = client.post("/outcomes", json=outcome)
    assert r.status_code == 200 and r.json()["status"] == "recorded"
    row = client.app.state.store.read_decisions().iloc[0]
    assert row["next_accuracy"] == 0.8 and bool(row["session_completed"])
    assert client.post("/outcomes", json={**outcome, "decision_id": "nope"}).status_code == 404
    assert client.post("/outcomes", json={**outcome, "next_accuracy": 2}).status_code == 422


def test_admin_auth(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNOPS_ADMIN_TOKENS", hash_token(ADMIN))
    monkeypatch.setenv("LEARNOPS_TOKENS", hash_token(USER))
    client = TestClient(create_app(_params(tmp_path)))  # tokens from the environment
    for method, path in [
        ("get", "/api/mlops/status"),
        ("get", "/api/mlops/versions"),
        ("get", "/api/mlops/production"),
        ("post", "/api/mlops/deploy/v1"),
        ("post", "/api/mlops/retrain"),
    ]:
        call = getattr(client, method)
        assert call(path).status_code == 401
        assert call(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert call(path, headers={"Authorization": f"Basic {ADMIN}"}).status_code == 401
        assert call(path, headers={"Authorization": f"Bearer {USER}"}).status_code == 403
    assert client.get("/api/mlops/status", headers=AUTH).status_code == 200
    # client tokens configured: /decide needs one (any role)
    assert client.get("/health").status_code == 200


def test_client_tokens_gate_decide(tmp_path, table):
    client = _client(_params(tmp_path), tokens=Tokens.of(admin=[ADMIN], user=[USER]))
    assert client.post("/decide", json=_body(table)).status_code == 401
    ok = client.post("/decide", json=_body(table), headers={"Authorization": f"Bearer {USER}"})
    assert ok.status_code == 200
    assert client.post("/decide", json=_body(table), headers=AUTH).status_code == 200


def test_token_hashes_from_env(monkeypatch):
    monkeypatch.setenv("LEARNOPS_ADMIN_TOKENS", f" {hash_token('a')} , {hash_token('b')}")
    monkeypatch.delenv("LEARNOPS_TOKENS", raising=False)
    t = Tokens.from_env()
    assert t.role("a") == t.role("b") == "admin" and t.role("c") is None and t.role("") is None
    assert not t.clients_need_token
    monkeypatch.setenv("LEARNOPS_TOKENS", "not-a-hash")
    with pytest.raises(ValueError, match="sha256"):
        Tokens.from_env()


def test_versions_production_deploy_and_hot_swap(tmp_path, table, model_dir):
    params = _params(tmp_path, threshold=0.0)
    v1 = _register(params, model_dir)
    v2 = _register(params, model_dir, deploy=False)
    client = _client(params, check_interval=0.05)
    assert client.post("/decide", json=_body(table)).json()["model_version"] == v1

    versions = client.get("/api/mlops/versions", headers=AUTH).json()["versions"]
    assert [v["version"] for v in versions] == [v1, v2]
    assert client.get(f"/api/mlops/versions/{v2}", headers=AUTH).json()["status"] == "completed"
    assert client.get("/api/mlops/versions/v99", headers=AUTH).status_code == 404
    assert client.post("/api/mlops/deploy/v99", headers=AUTH).status_code == 404
    assert client.get("/api/mlops/versions?model=zzz", headers=AUTH).status_code == 422

    r = client.post(f"/api/mlops/deploy/{v2}", headers=AUTH)
    assert r.status_code == 200 and r.json()["servingVersion"] == v2
    assert client.post("/decide", json=_body(table)).json()["model_version"] == v2  # at once
    prod = client.get("/api/mlops/production", headers=AUTH).json()
    assert prod["mlp"]["version"] == v2 and prod["irt"] is None
    status = client.get("/api/mlops/status", headers=AUTH).json()
    assert status["currentVersion"] == v2 and status["servingVersion"] == v2

    # a deploy outside the API (CLI, another process) is picked up by the periodic check
    v3 = _register(params, model_dir)
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline and seen != v3:
        seen = client.post("/decide", json=_body(table)).json()["model_version"]
        time.sleep(0.05)
    assert seen == v3
    assert 'learnops_model_info{model="mlp",version="v3"} 1' in client.get("/metrics").text


def test_one_registry_read_per_interval_keeps_every_model_current(
    tmp_path, table, model_dir, monkeypatch
):
    """The MLP and the learner model are both kept current by one registry read per check
    interval (not one per model), whatever the requests do meanwhile, and a deploy of either
    made outside the server reaches it through that read."""
    import learnops.learner_models.artifact

    params = _params(tmp_path, threshold=0.0)
    v1 = _register(params, model_dir)
    learner_art = tmp_path / "learner_art"
    learner_art.mkdir()
    (learner_art / "model.txt").write_text("a stand-in learner model")
    monkeypatch.setattr(learnops.learner_models.artifact, "load", lambda path: ("learner", path))
    reads: list[tuple[float, tuple[str, ...]]] = []
    productions = Registry.productions

    def counted(self, model_types):
        model_types = list(model_types)
        reads.append((time.monotonic(), tuple(model_types)))
        return productions(self, model_types)

    monkeypatch.setattr(Registry, "productions", counted)
    interval, window = 0.2, 1.6
    with _client(params, check_interval=interval) as client:  # polling runs (lifespan)
        state = client.app.state.serve
        assert state.holder.version == v1 and state.learners.version is None
        time.sleep(interval)
        reads.clear()
        t0 = time.monotonic()
        while time.monotonic() - t0 < window:  # requests ask both holders for their model
            assert client.post("/decide", json=_body(table)).status_code == 200
            assert client.get("/learners/someone/ability").status_code == 200
        n = len(reads)
        assert all(types == ("mlp", "learner") for _, types in reads), reads
        # one read per interval (the polling thread and the requests share it), not two
        assert window / interval / 2 <= n <= window / interval + 1, n
        gaps = np.diff([t for t, _ in reads])
        assert (gaps > interval * 0.75).all(), gaps

        # deploys made elsewhere (the CLI, another worker) reach both holders
        store = EventStore(params.db_url)
        try:
            reg = Registry(store, params.path(params.paths.models_dir) / "registry")
            lv = reg.start("learner", data_count=1)
            reg.complete("learner", lv.version, learner_art, {"log_loss": 0.5})
            reg.deploy("learner", lv.version)
        finally:
            store.dispose()
        v2 = _register(params, model_dir)
        deadline = time.monotonic() + 10
        while (state.holder.version, state.learners.version) != (v2, lv.version):
            assert time.monotonic() < deadline, (state.holder.version, state.learners.version)
            time.sleep(0.02)
        model, _ = state.learners.current()
        assert model[0] == "learner" and model[1].endswith(f"learner/{lv.version}")


def _fake_retrain_module(monkeypatch, fn):
    module = types.ModuleType("learnops.lifecycle.retrain")
    module.retrain = fn
    monkeypatch.setitem(sys.modules, "learnops.lifecycle.retrain", module)


def test_retrain_runs_in_background_and_refuses_a_second(tmp_path, monkeypatch):
    release = threading.Event()
    calls = []

    def fake_retrain(
        params, *, since=None, limit=None, auto_deploy=True, models=(), progress=False
    ):
        calls.append({"since": since, "limit": limit, "auto_deploy": auto_deploy})
        assert release.wait(10)
        return [{"model_type": "mlp", "version": "v1", "status": "completed"}]

    _fake_retrain_module(monkeypatch, fake_retrain)
    client = _client(_params(tmp_path))
    body = {"limit": 500, "autoDeploy": False, "since": "2026-09-01"}
    r = client.post("/api/mlops/retrain", json=body, headers=AUTH)
    assert r.status_code == 202 and r.json()["run"]["status"] == "running"
    r2 = client.post("/api/mlops/retrain", json={}, headers=AUTH)
    assert r2.status_code == 409 and r2.json()["detail"] == "Training already in progress"
    assert client.get("/api/mlops/status", headers=AUTH).json()["isTraining"] is True
    assert "learnops_training_in_progress 1" in client.get("/metrics").text
    release.set()
    client.app.state.retrain.thread.join(10)
    status = client.get("/api/mlops/status", headers=AUTH).json()
    assert status["isTraining"] is False
    assert status["lastRun"]["status"] == "completed"
    assert status["lastRun"]["result"][0]["version"] == "v1"
    assert calls == [{"since": __import__("datetime").date(2026, 9, 1), "limit": 500,
                      "auto_deploy": False}]  # fmt: skip
    assert client.post("/api/mlops/retrain", headers=AUTH).status_code == 202  # free again
    client.app.state.retrain.thread.join(10)


def test_retrain_refused_while_the_registry_lock_is_held(tmp_path, monkeypatch):
    _fake_retrain_module(monkeypatch, lambda params, **kw: [])
    client = _client(_params(tmp_path))
    with client.app.state.registry.training_lock():  # e.g. `learnops retrain` in another shell
        r = client.post("/api/mlops/retrain", headers=AUTH)
        assert r.status_code == 409 and r.json()["detail"] == "Training already in progress"
        assert client.get("/api/mlops/status", headers=AUTH).json()["isTraining"] is True


def test_retrain_without_data_reports_the_error(tmp_path, monkeypatch):
    def no_data(params, **kw):
        raise NoTrainingData()

    _fake_retrain_module(monkeypatch, no_data)
    client = _client(_params(tmp_path))
    assert client.post("/api/mlops/retrain", json={"limit": 10}, headers=AUTH).status_code == 202
    client.app.state.retrain.thread.join(10)
    last = client.get("/api/mlops/status", headers=AUTH).json()["lastRun"]
    assert last["status"] == "failed" and last["error"] == "No training data available"


def test_metrics_and_health(tmp_path, table):
    client = _client(_params(tmp_path))
    for i in range(3):
        client.post("/decide", json=_body(table, i))
    text = client.get("/metrics").text
    assert text.count('learnops_decisions_total{decided_by="llm"') >= 1
    assert "learnops_ml_usage_ratio 0.0" in text
    assert 'learnops_decision_latency_ms_bucket{le="+Inf"} 3' in text
    assert 'learnops_decision_latency_recent_ms{decided_by="all",quantile="0.99"}' in text
    assert 'learnops_model_info{model="mlp",version="none"} 1' in text
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["modelVersion"] is None


def test_no_endpoint_returns_learner_ids(tmp_path, table, model_dir, monkeypatch):
    _fake_retrain_module(monkeypatch, lambda params, **kw: [])
    params = _params(tmp_path)
    _register(params, model_dir)
    client = _client(params)
    texts = []
    for i in range(5):
        r = client.post("/decide", json=_body(table, i, ab_test="t", ab_group="ml"))
        texts.append(r.text)
        texts.append(client.post("/outcomes", json={"decision_id": r.json()["decision_id"],
                                                    "next_accuracy": 0.5}).text)  # fmt: skip
    client.post("/api/mlops/retrain", headers=AUTH)
    client.app.state.retrain.thread.join(10)
    for path in ["/api/mlops/status", "/api/mlops/versions", "/api/mlops/production",
                 "/api/mlops/versions/v1", "/metrics", "/health"]:  # fmt: skip
        texts.append(client.get(path, headers=AUTH).text)
    bad = client.post("/decide", json={**_body(table), "recent_accuracy": 9})
    texts.append(bad.text)
    blob = "\n".join(texts)
    assert SECRET_ID not in blob and "alice" not in blob
    assert client.app.state.decision_log.flush()
    with client.app.state.store.session() as s:
        assert s.query(MonitoringMetric).count() == 0
    stored = client.app.state.store.read_decisions()
    assert not (stored.astype(str) == SECRET_ID).any().any()


def test_shutdown_stores_queued_decisions(tmp_path, table):
    params = _params(tmp_path)
    with _client(params) as client:  # runs the app's lifespan: shutdown closes the state
        state = client.app.state.serve
        assert client.app.state.store is state.store and client.app.state.retrain is state.retrain
        ids = [client.post("/decide", json=_body(table, i)).json()["decision_id"] for i in range(3)]
    store = EventStore(params.db_url)
    assert sorted(store.read_decisions()["decision_id"]) == sorted(ids)
    store.dispose()


def test_serve_command_wires_params_and_address(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from learnops.serve import app as serve_app
    from learnops.serve.cli import serve_command

    (tmp_path / "params.yaml").write_text("seed: 3\n")
    seen = {}
    monkeypatch.setattr(serve_app, "run", lambda params, **kw: seen.update(seed=params.seed, **kw))
    cli = typer.Typer()
    cli.command("serve")(serve_command)
    cli.command("noop")(lambda: None)  # keep 'serve' a subcommand
    res = CliRunner().invoke(
        cli, ["serve", "--port", "8123", "--params", str(tmp_path / "params.yaml")]
    )
    assert res.exit_code == 0, res.output
    assert seen["seed"] == 3 and seen["port"] == 8123 and seen["host"] == "127.0.0.1"


def test_rule_teacher_matches_the_simulator_policy(table):
    from learnops.data.simulate import teacher_probabilities
    from learnops.serve import RuleTeacher

    p = teacher_probabilities(table[list(FEATURES)].to_numpy(float)[:20])
    for i in range(20):
        action, probs = RuleTeacher(sample=False).decide(table.iloc[i][list(FEATURES)].to_dict())
        assert action == ACTIONS[int(p[i].argmax())]
        np.testing.assert_allclose([probs[a] for a in ACTIONS], p[i])


def test_sampling_rule_teacher_draws_from_its_distribution(table):
    """The default teacher draws its action from teacher_probabilities: over many draws on one
    situation the action frequencies match them (chi-square), and a seed repeats the draws."""
    from scipy import stats

    from learnops.data.simulate import teacher_probabilities
    from learnops.serve import RuleTeacher

    x = table.iloc[7][list(FEATURES)].to_dict()
    p = teacher_probabilities(np.array([[x[f] for f in FEATURES]]))[0]
    teacher = RuleTeacher(seed=4)
    assert teacher.samples
    draws = [teacher.decide(x)[0] for _ in range(4000)]
    counts = np.array([draws.count(a) for a in ACTIONS])
    keep = p * 4000 >= 5
    expected = p[keep] * 4000
    chi2 = stats.chisquare(counts[keep], expected * counts[keep].sum() / expected.sum())
    assert chi2.pvalue > 1e-3
    again = RuleTeacher(seed=4)
    assert [again.decide(x)[0] for _ in range(50)] == draws[:50]
