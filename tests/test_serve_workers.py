"""Issue 16: ``learnops serve --workers N`` as real processes. A deploy, a started experiment
and the retrain lock reach every worker (PostgreSQL), and SIGTERM stores every answered decision.

The PostgreSQL tests need ``LEARNOPS_TEST_PG`` (``.ci/run`` starts a loopback PostgreSQL and sets
it); without it they skip, saying so."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from learnops.serve.schemas import FEATURE_RANGES

PG = os.environ.get("LEARNOPS_TEST_PG")
needs_pg = pytest.mark.skipif(
    not PG, reason="needs PostgreSQL: set LEARNOPS_TEST_PG (.ci/run starts one when it can)"
)
FEATS = {f: (lo + min(hi, 10.0)) / 2 for f, (lo, hi) in FEATURE_RANGES.items()}
ADMIN = "workers-admin-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_pg() -> str:
    from learnops.data.store import Base, EventStore

    store = EventStore(PG, create=False)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    store.dispose()
    return PG


def _project(root: Path, db_url: str, model: Path | None = None, versions: int = 0) -> Path:
    """params.yaml and, from the trained ``model``, ``versions`` completed MLP versions (v1
    deployed) in the store."""
    import shutil

    from learnops.config import load_params
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 3}))
    params = load_params(root / "params.yaml")
    store = EventStore(db_url)
    try:
        reg = Registry(store, params.path(params.paths.models_dir) / "registry")
        for i in range(versions):
            shutil.copytree(model, root / f"mlp-{i}")
            v = reg.start("mlp")
            reg.complete("mlp", v.version, root / f"mlp-{i}", {"accuracy": 0.5})
        if versions:
            reg.deploy("mlp", "v1")
    finally:
        store.dispose()
    return root / "params.yaml"


class _Server:
    """``learnops serve --workers N`` in a subprocess on a free loopback port."""

    def __init__(self, params: Path, db_url: str, workers: int, journal: Path) -> None:
        from learnops.serve import hash_token

        self.url = f"http://127.0.0.1:{_free_port()}"
        env = {
            **os.environ,
            "LEARNOPS_DB_URL": db_url,
            "LEARNOPS_DECISION_JOURNAL": str(journal),
            "LEARNOPS_ADMIN_TOKENS": hash_token(ADMIN),
            "LEARNOPS_SALT": "workers-test-salt",
        }
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "learnops", "serve", "--params", str(params), "--port", port,
               "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]
            if self.health() is not None:
                break
            time.sleep(0.1)
        self.workers = self.each_worker(lambda h: True, n=workers)

    def get(self, path: str, headers: dict | None = None) -> httpx.Response:
        # a fresh connection each time: any worker may accept it
        headers = {**(headers or {}), "Connection": "close"}
        return httpx.get(self.url + path, headers=headers, timeout=5)

    def health(self) -> dict | None:
        try:
            r = self.get("/health")
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def each_worker(self, ok, n: int | None = None, timeout: float = 20.0) -> dict[int, dict]:
        """/health of every worker once its answer satisfies ``ok`` (asked until it does)."""
        n = n or len(self.workers)
        got: dict[int, dict] = {}
        end = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < end:
            h = self.health()
            if h is not None and ok(h):
                got[h["worker"]] = h
        assert len(got) == n, f"{len(got)} of {n} workers: {got}"
        return got

    def decide(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            r = httpx.post(self.url + "/decide", json={**FEATS, "learner_id": f"w{i}"},
                           headers={"Connection": "close"}, timeout=10)  # fmt: skip
            assert r.status_code == 200, r.text
            ids.append(r.json()["decision_id"])
        return ids

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _stored_ids(db_url: str) -> list[str]:
    from learnops.data.store import EventStore

    store = EventStore(db_url)
    try:
        return list(store.read_decisions()["decision_id"])
    finally:
        store.dispose()


@needs_pg
def test_deploy_experiment_lock_and_sigterm_across_workers(tmp_path, tiny_project):
    """Two workers on PostgreSQL: a deploy and an experiment made outside the server reach both
    within the bound, the retrain lock held by another process is refused by both, and SIGTERM
    stores every answered decision."""
    from learnops.ab.experiments import start_experiment
    from learnops.config import load_params
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry

    trained = tiny_project(tmp_path / "tiny", trained=True)
    db = _fresh_pg()
    params = _project(tmp_path / "proj", db, trained.path("models/mlp"), versions=2)
    server = _Server(params, db, workers=2, journal=tmp_path / "journal")
    store = EventStore(db)
    try:
        assert {h["modelVersion"] for h in server.workers.values()} == {"v1"}
        reg = Registry(store, load_params(params).path("models/registry"))
        # a deploy made outside the server (what `learnops models deploy` does)
        t0 = time.time()
        reg.deploy("mlp", "v2")
        seen = server.each_worker(lambda h: h["modelVersion"] == "v2")
        assert all(h["modelLoadedAt"] - t0 < 2.0 for h in seen.values()), seen
        # an experiment started elsewhere is assigned by every worker
        t0 = time.time()
        start_experiment(store, "w16", {"ml": 0.5, "gpt4": 0.5}, min_sample_size=10)
        server.each_worker(lambda h: h["experiment"] == "w16")
        assert time.time() - t0 < 10
        # the retrain lock held by this process is seen, and refused, by every worker
        auth = {"Authorization": f"Bearer {ADMIN}"}
        with reg.training_lock():
            for _ in range(6):
                r = server.get("/api/mlops/status", headers=auth)
                assert r.status_code == 200 and r.json()["isTraining"] is True
                r = httpx.post(server.url + "/api/mlops/retrain", headers={**auth,
                               "Connection": "close"}, timeout=5)  # fmt: skip
                assert r.status_code == 409 and "Training already in progress" in r.text
        assert server.get("/api/mlops/status", headers=auth).json()["isTraining"] is False
        answered = server.decide(30)
        assert server.terminate() == 0
    finally:
        store.dispose()
        server.kill()
    assert sorted(_stored_ids(db)) == sorted(answered)
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_sigterm_stores_every_answered_decision(tmp_path):
    """Two workers (on SQLite: no PostgreSQL needed) answer decisions; SIGTERM right after the
    last answer: the graceful shutdown stores every one of them, no journal segment is left."""
    db = f"sqlite:///{tmp_path / 'events.db'}"
    params = _project(tmp_path, db)  # no model: the fallback answers, quicker to start
    journal = tmp_path / "journal"
    server = _Server(params, db, workers=2, journal=journal)
    try:
        answered = server.decide(40)
        assert server.terminate() == 0
    finally:
        server.kill()
    assert sorted(_stored_ids(db)) == sorted(answered)
    assert list(journal.glob("*.jsonl")) == []


def test_workers_must_be_positive(tmp_path):
    from learnops.errors import LearnopsError
    from learnops.serve.cli import serve_command

    (tmp_path / "params.yaml").write_text("seed: 1\n")
    with pytest.raises(LearnopsError, match="--workers must be at least 1, got 0"):
        serve_command(host="127.0.0.1", port=8000, params=tmp_path / "params.yaml",
                      log_level="info", access_log=False, workers=0)  # fmt: skip


def test_an_idle_worker_picks_up_a_deploy_made_elsewhere(tmp_path, tiny_project, monkeypatch):
    """No request reaches the app, yet it serves the version deployed by another process (here:
    the registry, as `learnops models deploy` does) within the check interval."""
    from fastapi.testclient import TestClient

    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry
    from learnops.serve import Tokens, create_app

    monkeypatch.delenv("LEARNOPS_DB_URL", raising=False)
    trained = tiny_project(tmp_path / "tiny", trained=True)
    db = f"sqlite:///{tmp_path / 'events.db'}"
    params_path = _project(tmp_path / "proj", db, trained.path("models/mlp"), versions=2)
    monkeypatch.setenv("LEARNOPS_DB_URL", db)
    from learnops.config import load_params

    params = load_params(params_path)
    app = create_app(params, tokens=Tokens.of(admin=["a"]), check_interval=0.2)
    store = EventStore(db)
    try:
        with TestClient(app):
            assert app.state.holder.version == "v1"
            Registry(store, params.path("models/registry")).deploy("mlp", "v2")
            deadline = time.monotonic() + 5
            while app.state.holder.version != "v2" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert app.state.holder.version == "v2"
    finally:
        store.dispose()


def test_the_store_keeps_the_salt_every_worker_and_replica_must_share(store, monkeypatch):
    from learnops.errors import LearnopsError
    from learnops.hashing import salt_fingerprint

    monkeypatch.setenv("LEARNOPS_SALT", "replica-salt")
    first = store.claim_salt()
    assert first == salt_fingerprint() and store.claim_salt() == first  # recorded, then checked
    monkeypatch.setenv("LEARNOPS_SALT", "another-salt")
    with pytest.raises(LearnopsError, match="must share the store's LEARNOPS_SALT") as err:
        store.claim_salt()
    assert "replica-salt" not in str(err.value) and "another-salt" not in str(err.value)
