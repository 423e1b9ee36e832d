"""The closed experiment loop end to end, as the README runs it, against a real uvicorn on
127.0.0.1: serve → ab start → traffic → ab stop → export → ope → retrain → models deploy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

ADMIN = "loop-admin-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "learnops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"learnops {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _wait(url: str, proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-3000:]}")
        try:
            r = httpx.get(url + "/health", timeout=1.0)
            if r.status_code == 200 and ready(r.json()):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready")


def test_experiment_loop_end_to_end(tmp_path, tiny_project):
    from learnops.data.store import EventStore
    from learnops.lifecycle.registry import Registry
    from learnops.serve import hash_token

    p = tiny_project(tmp_path, trained=True, serve={"epsilon": 0.2, "seed": 3})
    store = EventStore(p.db_url)
    reg = Registry(store, p.path(p.paths.models_dir) / "registry")
    v = reg.start("mlp", data_count=1)
    reg.complete("mlp", v.version, p.path(p.paths.models_dir) / "mlp", {"accuracy": 0.9})
    reg.deploy("mlp", v.version)
    store.dispose()

    env = {k: v for k, v in os.environ.items() if k not in ("LEARNOPS_DB_URL", "LEARNOPS_TOKENS")}
    env["LEARNOPS_ADMIN_TOKENS"] = hash_token(ADMIN)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "learnops", "serve", "--port", str(port), "--params", "params.yaml"]
        + ["--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(url, server, lambda h: h["modelVersion"] == v.version)
        _run(env, tmp_path, "ab", "start", "e2e", "--arms", "ml=0.4,gpt4=0.4,hybrid=0.2")
        status = json.loads(_run(env, tmp_path, "ab", "status", "--json").stdout)
        running = [e["name"] for e in status["experiments"] if e["status"] == "running"]
        assert running == ["e2e"]
        _wait(url, server, lambda h: h["experiment"] == "e2e")
        traffic = _run(
            env, tmp_path, "traffic", "--url", url, "--learners", "40",
            "--decisions-per-learner", "2", "--seed", "4", "--truth", "truth.parquet",
            "--claim-arm", "ml",
        )  # fmt: skip
        assert "80 made, 0 failed" in traffic.stdout
        # an admin can also see it over HTTP
        exps = httpx.get(
            url + "/api/mlops/experiments", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert exps.status_code == 200 and "e2e" in exps.text
        stopped = _run(env, tmp_path, "ab", "stop", "e2e")
        assert "e2e" in stopped.stdout
        _wait(url, server, lambda h: h["experiment"] is None)
    finally:
        server.terminate()
        server.wait(timeout=30)

    reports = tmp_path / "reports" / "ab"
    result = json.loads((reports / "e2e.json").read_text())
    assert (reports / "e2e.html").stat().st_size > 10_000
    assert result["experiment"]["name"] == "e2e"
    assert "srm" in result and "comparisons" in result

    _run(env, tmp_path, "export", "--out", "export")
    decisions = pd.read_parquet(tmp_path / "export" / "decisions.parquet")
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    served = decisions[decisions["decision_id"].isin(truth["decision_id"])]
    assert len(served) == len(truth) == 80  # every served decision exported
    assert (served["ab_test"] == "e2e").all()
    assert served["next_engagement"].notna().all()
    p_cols = [c for c in decisions.columns if c.startswith("p_")]
    np.testing.assert_allclose(served[p_cols].sum(axis=1), 1.0)
    for _lh, g in served.groupby("learner_hash"):  # one arm per learner, the hash assignment
        assert g["ab_group"].nunique() == 1

    _run(
        env, tmp_path, "ope", "export/decisions.parquet", "--model", v.version,
        "--epsilon", "0.2", "--where", "ab_test=e2e", "--json", "ope.json",
    )  # fmt: skip
    ope = json.loads((tmp_path / "ope.json").read_text())
    assert ope["n"] == 80 and set(ope["estimates"]) == {"ips", "snips", "dr"}
    for est in ope["estimates"].values():
        assert est["ci_low"] <= est["value"] <= est["ci_high"]
    assert ope["ess"] > 0 and ope["max_weight"] >= 1

    _run(env, tmp_path, "retrain", "--model", "mlp", "--no-auto-deploy")
    store = EventStore(p.db_url)
    try:
        versions = Registry(store, p.path(p.paths.models_dir) / "registry").list("mlp")
    finally:
        store.dispose()
    new = [x for x in versions if x.status == "completed"]
    assert new, [(x.version, x.status, x.error) for x in versions]
    _run(env, tmp_path, "models", "deploy", new[-1].version, "--model", "mlp")
    shown = _run(env, tmp_path, "models", "list", "--model", "mlp").stdout
    assert new[-1].version in shown
