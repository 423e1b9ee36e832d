"""Issue 12 item 7: `learnops traffic`, simulated learners driving a running server, and the
ground truth it writes for off-policy evaluation (counterfactual outcome of every action)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pandas as pd
import pytest

from learnops.contracts import ACTIONS, FEATURES
from learnops.data import traffic
from learnops.data.traffic import run_traffic
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash


class FakeServer:
    """An in-process /decide + /outcomes server for httpx.MockTransport (thread-safe).

    ``policy(learner_id, n, features) -> action``; decision ids are deterministic
    (``<learner_id>/<n>``), so runs can be compared row by row."""

    def __init__(self, policy=lambda lid, n, x: "continue", fail=None, explore=False):
        self.policy = policy
        self.fail = fail  # (path, attempt number) -> status code or None
        self.explore = explore
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.calls: Counter = Counter()
        self.decisions: dict[str, dict] = {}
        self.outcomes: dict[str, dict] = {}
        self.outcome_posts: Counter = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            self.calls[path] += 1
            attempt = self.calls[path]
        if self.fail is not None and (code := self.fail(path, attempt)):
            return httpx.Response(code, json={"detail": "nope"})
        if path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        body = json.loads(request.content)
        if path == "/decide":
            return self._decide(body)
        if path == "/outcomes":
            return self._outcome(body)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _decide(self, body: dict) -> httpx.Response:
        from learnops.serve.schemas import FEATURE_RANGES

        lid = body["learner_id"]
        assert set(body) == {"learner_id", *FEATURES}  # the server assigns the arm
        for f, (lo, hi) in FEATURE_RANGES.items():
            assert type(body[f]) is float and lo <= body[f] <= hi, (f, body[f])
        with self.lock:
            n = self.counts[lid]
            self.counts[lid] += 1
        action = self.policy(lid, n, body)
        did = f"{lid}/{n}"
        group = ("ml", "gpt4", "hybrid")[int(learner_hash(lid), 16) % 3]
        self.decisions[did] = body
        return httpx.Response(
            200,
            json={
                "action": action,
                "confidence": 0.8,
                "decided_by": "ml",
                "latency_ms": 0.1,
                "model_version": "v1",
                "decision_id": did,
                "probabilities": {a: 0.2 for a in ACTIONS},
                "difficulty_delta": None,
                "ab_test": "exp1",
                "ab_group": group,
                "propensity": 0.2 if self.explore else 1.0,
                "explored": self.explore,
            },
        )

    def _outcome(self, body: dict) -> httpx.Response:
        did = body.pop("decision_id")
        with self.lock:
            if did not in self.decisions:
                return httpx.Response(404, json={"detail": "unknown decision id"})
            self.outcome_posts[did] += 1
            if self.outcomes.setdefault(did, body) != body:
                return httpx.Response(409, json={"detail": "outcome already recorded"})
        return httpx.Response(200, json={"decision_id": did, "status": "recorded"})


def _run(server, n=12, **kw):
    kw.setdefault("progress", False)
    return run_traffic("http://fake", n, transport=httpx.MockTransport(server), **kw)


def _cycling(lid, n, x):
    return ACTIONS[(int(learner_hash(lid), 16) + n) % len(ACTIONS)]


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(traffic, "RETRY_DELAY", 0.0)


def test_realized_outcome_is_the_served_actions_counterfactual():
    server = FakeServer(policy=_cycling)
    res = _run(server, n=40, decisions_per_learner=3)
    df = res.table()
    assert len(df) == 120 and not res.failed
    assert set(df["action"]) == set(ACTIONS)
    for _, row in df.iterrows():
        assert row["next_engagement"] == row[f"q_{row['action']}"]
        assert row["next_accuracy"] == row[f"qa_{row['action']}"]
        posted = server.outcomes[row["decision_id"]]
        assert posted["next_engagement"] == row["next_engagement"]
        assert posted["next_accuracy"] == row["next_accuracy"]
    # the counterfactuals differ between actions (they are not one number copied five times)
    q = df[[f"q_{a}" for a in ACTIONS]]
    assert (q.nunique(axis=1) > 1).mean() > 0.9
    # the ideal action gets the +0.04 bonus, so it is better on average than the others
    ideal_q = [r[f"q_{r['ideal_action']}"] for _, r in df.iterrows()]
    assert sum(ideal_q) / len(ideal_q) > q.mean(axis=1).mean()


def test_window_uses_common_random_numbers_on_copies():
    from learnops.data.simulate import _Rows

    world = traffic._World.build(3, 1)
    # a learner mid-session, as _run_learner leaves it at a decision point
    from learnops.data.simulate import _answer, _Learner, _Session

    r = random.Random(1)
    learner = _Learner("h", "", 0.2, 0.04, 1.5)
    t = pd.Timestamp("2026-01-05T10:00", tz="UTC").to_pydatetime()
    s = _Session(0, world.bank.modules[0], 0.6, -0.3, start=t, t=t, days_away=30.0)
    for _ in range(6):
        _answer(r, world.bank, learner, s, _Rows())
    before = (traffic._deep_copy(learner), traffic._deep_copy(s))
    outs = {}
    for a in ACTIONS:
        lc, sc = traffic._deep_copy(learner), traffic._deep_copy(s)
        outs[a] = traffic.simulate_window(random.Random(9), world.bank, lc, sc, 40, a, 0.1, "x")
    assert (learner, s) == before  # the copies, not the state, moved
    again = traffic.simulate_window(
        random.Random(9), world.bank, learner, s, 40, "provide_help", 0.1, "x"
    )
    assert again.key() == outs["provide_help"].key()
    assert s.n == before[1].n + 5  # five answers in the window


def test_fixed_seed_and_policy_give_the_same_truth_whatever_the_concurrency():
    a = _run(FakeServer(), n=16, seed=7, concurrency=1).table()
    b = _run(FakeServer(), n=16, seed=7, concurrency=6).table()
    pd.testing.assert_frame_equal(a, b)
    c = _run(FakeServer(), n=16, seed=8, concurrency=6).table()
    assert not a[list(FEATURES)].equals(c[list(FEATURES)])  # another seed, another world
    # learner ids are traffic-<seed>-<j>, hashed in the truth like the server does
    assert set(a["learner_hash"]) == {learner_hash(f"traffic-7-{j}") for j in range(16)}


def test_every_decision_gets_exactly_one_outcome(tmp_path):
    server = FakeServer(policy=_cycling, explore=True)
    out = tmp_path / "truth.csv"
    res = _run(server, n=60, decisions_per_learner=4, truth=out)
    assert res.decisions == 240 and res.outcomes_posted == 240 and not res.failed
    assert set(server.decisions) == set(server.outcome_posts)
    assert set(server.outcome_posts.values()) == {1}
    assert Counter(server.counts.values()) == {4: 60}
    # the outcome is complete (all fields known when posted), sessions end both ways
    outcomes = pd.DataFrame(server.outcomes.values())
    assert outcomes.notna().all().all()
    assert set(outcomes["session_completed"]) == {True, False}
    truth = pd.read_csv(out)
    assert list(truth.columns[:8]) == [
        "decision_id",
        "learner_hash",
        "ab_test",
        "ab_group",
        "action",
        "propensity",
        "explored",
        "decided_by",
    ]
    need = [*FEATURES, *(f"q_{a}" for a in ACTIONS), *(f"qa_{a}" for a in ACTIONS)]
    assert set(need) <= set(truth.columns) and "ideal_action" in truth.columns
    assert len(truth) == 240 and truth["explored"].all()
    # decision windows do not overlap: >= 6 answers between two decisions of a session
    t2 = truth.sort_values(["learner_hash", "decision_index"])
    gaps = t2.groupby("learner_hash")["items_in_session"].diff()
    same_session = t2.groupby("learner_hash")["sessions_completed"].diff() == 0
    assert (gaps[same_session] >= traffic.WINDOW + 1).all()
    lines = res.summary_lines()
    assert any("240 made, 0 failed" in line and "240 posted" in line for line in lines)
    assert any(line.startswith("per arm:") and "gpt4" in line for line in lines)
    assert any("explored: 240 of 240" in line for line in lines)


def test_5xx_is_retried_then_counted_as_failed(no_backoff, tmp_path):
    flaky = FakeServer(fail=lambda path, n: 503 if path == "/decide" and n % 3 else None)
    res = _run(flaky, n=5, decisions_per_learner=2, concurrency=1)  # 2 503s, then 200
    assert res.decisions == 10 and not res.failed

    down = FakeServer(fail=lambda path, n: 500 if path == "/decide" else None)
    res = _run(down, n=3, decisions_per_learner=2)
    assert res.decisions == 0 and res.decisions_failed == 3 and res.failed  # one per learner
    assert down.calls["/decide"] == 3 * (traffic.RETRIES + 1)
    assert any("HTTP 500" in e for e in res.errors)

    conflict = FakeServer()
    conflict.outcomes = _Conflicting()
    res = _run(conflict, n=2, decisions_per_learner=1)
    assert res.outcomes_failed == 2 and res.failed
    assert any("409" in e for e in res.errors)


class _Conflicting(dict):
    """An outcome store where every decision already has another outcome."""

    def setdefault(self, key, default=None):
        return {"next_accuracy": -1.0}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_a_clear_error(status):
    server = FakeServer(fail=lambda path, n: status if path == "/decide" else None)
    with pytest.raises(LearnopsError, match="token") as err:
        _run(server, n=8, token="wrong")
    assert str(status) in str(err.value)
    assert server.calls["/decide"] < 8 * 4  # the run stops instead of trying every learner
    with pytest.raises(LearnopsError, match="--token"):
        _run(FakeServer(fail=lambda path, n: 401 if path == "/decide" else None), n=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_one_line_error(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(LearnopsError, match="cannot reach the server"):
        run_traffic(url, 2, progress=False)
    with pytest.raises(LearnopsError, match="--truth"):
        run_traffic(url, 2, truth=tmp_path / "t.json")
    proc = subprocess.run(
        [sys.executable, "-m", "learnops", "traffic", "--url", url, "--learners", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("error: cannot reach the server at " + url)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def test_against_a_real_server(tmp_path):
    """`learnops serve` on 127.0.0.1 with a client token: a bad token is refused clearly, then
    20 learners x 2 decisions land in the store with their outcomes."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from learnops.config import load_params
    from learnops.data.store import EventStore
    from learnops.serve import hash_token

    (tmp_path / "params.yaml").write_text("seed: 1\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "LEARNOPS_DB_URL"}
    env["LEARNOPS_TOKENS"] = hash_token("good")
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnops", "serve", "--port", str(port), "--log-level", "warning"]
        + ["--params", str(tmp_path / "params.yaml")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, proc)
        with pytest.raises(LearnopsError, match="refused the token given with --token"):
            run_traffic(url, 3, token="bad", progress=False)
        with pytest.raises(LearnopsError, match="requires a client token"):
            run_traffic(url, 3, progress=False)
        truth = tmp_path / "truth.parquet"
        res = run_traffic(
            url, 20, token="good", seed=3, decisions_per_learner=2, truth=truth, progress=False
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not res.failed, res.summary_lines()
    assert res.decisions == 40 and res.outcomes_posted == 40
    store = EventStore(load_params(tmp_path / "params.yaml").db_url)
    try:
        stored = store.read_decisions()
    finally:
        store.dispose()
    t = pd.read_parquet(truth)
    assert len(stored) == 40
    assert set(stored["decision_id"]) == set(t["decision_id"])
    assert set(stored["learner_hash"]) == set(t["learner_hash"])  # the same HMAC (same salt)
    assert stored["next_engagement"].notna().all() and stored["next_accuracy"].notna().all()
    assert stored["session_completed"].notna().all()
    m = stored.merge(t, on="decision_id", suffixes=("", "_truth"))
    assert (m["action"] == m["action_truth"]).all()
    assert (m["next_engagement"] - m["next_engagement_truth"]).abs().max() < 1e-9
    for f in FEATURES:
        assert (m[f] - m[f + "_truth"]).abs().max() < 1e-9, f


def test_a_server_that_stops_answering_stops_the_run(no_backoff):
    def gone(path, n):
        if path == "/decide" and n > 3:
            raise httpx.ConnectError("connection refused")
        return None

    with pytest.raises(LearnopsError, match="stopped answering"):
        _run(FakeServer(fail=gone), n=6)


def test_the_command_prints_a_summary_and_fails_on_failures(monkeypatch, tmp_path):
    import functools

    import typer
    from typer.testing import CliRunner

    cli = typer.Typer()
    cli.command("traffic")(traffic.traffic_command)
    cli.command("noop")(lambda: None)  # keep 'traffic' a subcommand
    server = FakeServer()
    monkeypatch.setattr(
        traffic,
        "run_traffic",
        functools.partial(run_traffic, transport=httpx.MockTransport(server)),
    )
    args = ["traffic", "--url", "http://fake", "--learners", "3", "--decisions-per-learner", "2"]
    out = CliRunner().invoke(cli, [*args, "--truth", str(tmp_path / "t.parquet")])
    assert out.exit_code == 0, out.output
    assert "6 made, 0 failed" in out.output and "decisions/s" in out.output
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 6
    monkeypatch.setattr(traffic, "RETRY_DELAY", 0.0)
    server.fail = lambda path, n: 503 if path == "/outcomes" else None
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1 and "6 failed" in out.output
