"""Issue 22 items 2, 3 and 6: answered decisions are durable (journal, replay, retries),
outcomes are write-once, and the server always HMACs the learner id it is sent."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import insert

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from learnops.config import Params  # noqa: E402
from learnops.data.store import Decision, EventStore, decision_row  # noqa: E402
from learnops.hashing import learner_hash  # noqa: E402
from learnops.serve import Tokens, create_app  # noqa: E402
from learnops.serve.schemas import FEATURE_RANGES  # noqa: E402

FEATS = {f: (lo + min(hi, 10.0)) / 2 for f, (lo, hi) in FEATURE_RANGES.items()}


def _body(learner="learner-1", **extra):
    return {**FEATS, "learner_id": learner, **extra}


def _client(root):
    return TestClient(create_app(Params(root=root), tokens=Tokens.of(admin=["a"])))


def _stored_ids(root):
    store = EventStore(Params(root=root).db_url)
    try:
        return list(store.read_decisions()["decision_id"])
    finally:
        store.dispose()


_CRASH = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from fastapi.testclient import TestClient
    from learnops.config import Params
    from learnops.serve import Tokens, create_app
    from learnops.serve.decision_log import DecisionLog

    DecisionLog._write = lambda self, rows: time.sleep(3600)  # the store never gets them
    client = TestClient(create_app(Params(root=sys.argv[1]), tokens=Tokens.of(admin=["a"])))
    ids = []
    for i in range(20):
        r = client.post("/decide", json={**json.loads(sys.argv[2]), "learner_id": f"l{i}"})
        assert r.status_code == 200, r.text
        ids.append(r.json()["decision_id"])
    print(json.dumps(ids), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_decisions_answered_200_survive_kill_9(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(tmp_path), json.dumps(FEATS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    answered = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(answered) == 20
    with _client(tmp_path) as client:  # the restart replays the journal into the store
        assert client.app.state.decision_log.flush(timeout=60)
    assert sorted(_stored_ids(tmp_path)) == sorted(answered)
    journal = tmp_path / "data" / "raw" / "events.db.journal"
    assert list(journal.glob("*.jsonl")) == []  # confirmed rows leave the journal


def test_a_failing_store_keeps_decisions_and_retries(tmp_path):
    client = _client(tmp_path)
    dlog = client.app.state.decision_log
    real, calls = dlog._write, []

    def flaky(rows):
        calls.append(len(rows))
        if len(calls) <= 3:  # locked / unreachable for three attempts
            raise RuntimeError("database is locked")
        real(rows)

    dlog._write = flaky
    ids = [client.post("/decide", json=_body()).json()["decision_id"] for _ in range(5)]
    assert dlog.flush(timeout=60)
    assert sorted(_stored_ids(tmp_path)) == sorted(ids)
    assert len(calls) > 3
    metrics = client.get("/metrics").text
    assert 'learnops_errors_total{kind="store"}' in metrics
    dlog.close()


def test_journal_replay_is_idempotent_and_skips_torn_lines(tmp_path):
    params = Params(root=tmp_path)
    store = EventStore(params.db_url)
    rows = [decision_row(f"l{i}", FEATS, {"action": "continue"}) for i in range(3)]
    with store.session() as s:  # the first row reached the store before the crash
        s.execute(insert(Decision.__table__), rows[:1])
    store.dispose()
    journal = tmp_path / "data" / "raw" / "events.db.journal"
    journal.mkdir(parents=True)
    lines = [json.dumps({**r, "timestamp": r["timestamp"].isoformat()}) for r in rows]
    seg = journal / "decisions-00000000000000000001-1.jsonl"
    seg.write_text("\n".join(lines) + '\n{"decision_id": "torn', encoding="utf-8")
    with _client(tmp_path) as client:
        assert client.app.state.decision_log.flush(timeout=60)
    assert sorted(_stored_ids(tmp_path)) == sorted(r["decision_id"] for r in rows)
    assert not seg.exists()


@pytest.mark.parametrize("fsync", [True, False])
def test_journal_segments_rotate_and_are_deleted_once_stored(tmp_path, fsync):
    from learnops.serve.decision_log import DecisionLog

    store = EventStore(Params(root=tmp_path).db_url)
    dlog = DecisionLog(store, tmp_path / "journal", max_segment_bytes=2000, fsync=fsync)
    rows = [decision_row(f"l{i}", FEATS, {"action": "continue"}) for i in range(30)]
    for r in rows:
        dlog.submit(r)
    assert dlog.flush(timeout=60)
    assert len(list((tmp_path / "journal").glob("*.jsonl"))) == 1  # only the open segment
    dlog.close()
    assert list((tmp_path / "journal").glob("*.jsonl")) == []
    assert store.count(Decision) == 30
    store.dispose()


def test_outcomes_are_write_once_per_field(tmp_path):
    client = _client(tmp_path)
    did = client.post("/decide", json=_body()).json()["decision_id"]
    first = {"decision_id": did, "next_accuracy": 0.8, "session_completed": True}
    assert client.post("/outcomes", json=first).status_code == 200
    assert client.post("/outcomes", json=first).status_code == 200  # identical repeat
    r = client.post("/outcomes", json={**first, "next_accuracy": 0.3})
    assert r.status_code == 409 and "next_accuracy" in r.text
    r = client.post("/outcomes", json={"decision_id": did, "session_completed": False})
    assert r.status_code == 409
    # null never erases; a new field may still be added
    r = client.post(
        "/outcomes", json={"decision_id": did, "next_accuracy": None, "next_engagement": 0.5}
    )
    assert r.status_code == 200
    assert client.post("/outcomes", json={"decision_id": did}).status_code == 422
    nulls = {"decision_id": did, "next_accuracy": None, "session_completed": None}
    assert client.post("/outcomes", json=nulls).status_code == 422
    assert client.post("/outcomes", json={**first, "decision_id": "nope"}).status_code == 404
    row = client.app.state.store.read_decisions().iloc[0]
    assert row["next_accuracy"] == 0.8 and bool(row["session_completed"])
    assert row["next_engagement"] == 0.5
    client.app.state.decision_log.close()


def test_conflicting_outcome_changes_nothing(tmp_path):
    store = EventStore(Params(root=tmp_path).db_url)
    did = store.record_decision("l", FEATS, {"action": "continue"})
    store.record_outcome(did, {"next_accuracy": 0.8})
    from learnops.data.store import OutcomeConflict

    with pytest.raises(OutcomeConflict):  # the new field is rolled back with the conflict
        store.record_outcome(did, {"next_accuracy": 0.1, "total_session_time_ms": 5.0})
    row = store.read_decisions().iloc[0]
    assert row["next_accuracy"] == 0.8 and row["total_session_time_ms"] != 5.0
    store.dispose()


def test_server_hashes_a_64_hex_learner_id(tmp_path):
    unsalted = hashlib.sha256(b"alice@example.com").hexdigest()
    client = _client(tmp_path)
    assert client.post("/decide", json=_body(learner=unsalted)).status_code == 200
    assert client.app.state.decision_log.flush()
    stored = client.app.state.store.read_decisions()["learner_hash"].tolist()
    assert stored == [learner_hash(unsalted)] and unsalted not in stored
    client.app.state.decision_log.close()
