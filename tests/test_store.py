"""Event store: collector API, hashing at rest, transactions, bulk inserts, windows (SQLite and,
when LEARNOPS_TEST_PG is set, PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from learnops.contracts import FEATURES
from learnops.data.store import Decision, Response
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash

CONTEXT = {f: 0.5 for f in FEATURES}


def test_record_decision_and_outcome_roundtrip(store):
    t = datetime(2026, 10, 1, 12, tzinfo=UTC)
    did = store.record_decision(
        "learner-1",
        CONTEXT,
        {
            "action": "provide_help",
            "decided_by": "ml",
            "confidence": 0.9,
            "propensity": 0.8,
            "latency_ms": 2.5,
            "model_version": "v1",
        },
        timestamp=t,
    )
    store.record_outcome(
        did,
        {
            "next_accuracy": 0.6,
            "next_engagement": 0.7,
            "session_completed": True,
            "total_session_time_ms": 1e6,
        },
    )
    df = store.read_decisions()
    assert len(df) == 1
    row = df.iloc[0]
    assert row["decision_id"] == did
    assert row["learner_hash"] == learner_hash("learner-1")
    assert row["timestamp"] == pd.Timestamp(t)
    assert row["next_engagement"] == pytest.approx(0.7)
    assert bool(row["session_completed"]) is True


def test_clear_learner_ids_never_reach_the_database(store):
    store.record_response("alice@example.org", "q1", 1, 1200.0)
    store.record_decision("alice@example.org", CONTEXT, {"action": "continue"})
    with store.engine.connect() as conn:
        values = [str(v) for row in conn.execute(select(Response.__table__)) for v in row]
        values += [str(v) for row in conn.execute(select(Decision.__table__)) for v in row]
    assert not any("alice" in v for v in values)


def test_bad_records_are_refused_and_nothing_is_written(store):
    with pytest.raises(LearnopsError, match="unknown action"):
        store.record_decision("l", CONTEXT, {"action": "dance"})
    with pytest.raises(LearnopsError, match="misses feature"):
        store.record_decision("l", {"recent_accuracy": 1.0}, {"action": "continue"})
    with pytest.raises(LearnopsError, match="correct must be 0 or 1"):
        store.record_response("l", "q", 2)
    with pytest.raises(LearnopsError, match="unknown decision"):
        store.record_outcome("nope", {"next_accuracy": 0.5})
    with pytest.raises(LearnopsError, match="within 0..1"):
        did = store.record_decision("l", CONTEXT, {"action": "continue"})
        store.record_outcome(did, {"next_accuracy": 1.5})
    assert store.count(Response) == 0
    assert store.read_decisions()["next_accuracy"].isna().all()


def test_bulk_insert_is_one_transaction(store, small_sim):
    good = small_sim.responses.iloc[:1000]
    dup = pd.concat([good, good.iloc[:1]])  # duplicate primary key in the last batch
    with pytest.raises(IntegrityError):
        store.insert_responses(dup)
    assert store.count(Response) == 0
    assert store.insert_responses(good) == 1000
    assert store.count(Response) == 1000


def test_window_and_limit(store, small_sim):
    store.insert_responses(small_sim.responses)
    store.insert_decisions(small_sim.decisions)
    latest = store.latest_timestamp()
    assert latest == max(
        small_sim.responses["timestamp"].max(), small_sim.decisions["timestamp"].max()
    )
    since = latest - timedelta(days=7)
    got = store.read_responses(since=since)
    expected = small_sim.responses[small_sim.responses["timestamp"] >= since]
    assert len(got) == len(expected)
    assert got["timestamp"].is_monotonic_increasing
    last = store.read_decisions(limit=10)
    assert len(last) == 10
    assert last["timestamp"].min() >= small_sim.decisions["timestamp"].nlargest(10).min()
    roundtrip = store.read_decisions()
    pd.testing.assert_series_equal(
        roundtrip["recent_accuracy"].reset_index(drop=True),
        small_sim.decisions.sort_values(["timestamp", "decision_id"])[
            "recent_accuracy"
        ].reset_index(drop=True),
    )


def test_evaluation_and_metric_records(store):
    eid = store.record_evaluation("mlp", "v1", {"accuracy": 0.9, "f1": {"continue": 0.8}}, 0.9)
    assert eid >= 1
    store.record_metric("latency_p99_ms", 3.2, model_version="v1", labels={"window": "1h"})
    store.record_metric("ml_usage", 0.4, alert=True, message="ML usage below 70%")
