"""Deterministic hash assignment and the A/B test lifecycle."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from learnops.ab import ABTest, assign_group, assign_groups, bucket, start_test
from learnops.errors import LearnopsError

WEIGHTS = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}


def _hashes(n, start=0):
    return [hashlib.sha256(f"learner-{i}".encode()).hexdigest() for i in range(start, start + n)]


def test_bucket_is_sha256_of_experiment_and_learner():
    digest = hashlib.sha256(b"exp\x1fabc").digest()
    assert bucket("exp", "abc") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0 <= bucket("exp", "abc") < 1


def test_assignment_is_deterministic_and_order_free():
    hs = _hashes(500)
    a = assign_groups("exp1", hs, WEIGHTS)
    assert a == assign_groups("exp1", hs, WEIGHTS)
    reordered = {"hybrid": 0.2, "gpt4": 0.4, "ml": 0.4}
    assert a == assign_groups("exp1", hs, reordered)
    assert a == assign_groups("exp1", hs, {"ml": 2, "gpt4": 2, "hybrid": 1})  # unnormalized
    # a different experiment reshuffles learners independently
    b = assign_groups("exp2", hs, WEIGHTS)
    assert 0.2 < np.mean([x == y for x, y in zip(a, b, strict=True)]) < 0.5


def test_assignment_matches_weights_within_binomial_tolerance():
    n = 20000
    counts = Counter(assign_groups("decision_policy_v1", _hashes(n), WEIGHTS))
    for g, w in WEIGHTS.items():
        sd = np.sqrt(n * w * (1 - w))
        assert abs(counts[g] - n * w) < 4 * sd, (g, counts[g])


def test_assignment_is_stable_when_population_grows():
    first = _hashes(1000)
    grown = first + _hashes(3000, start=1000)
    before = assign_groups("exp", first, WEIGHTS)
    after = assign_groups("exp", grown, WEIGHTS)
    assert after[:1000] == before


def test_zero_weight_group_gets_nobody_and_bad_weights_fail():
    got = set(assign_groups("exp", _hashes(2000), {"a": 1, "b": 0}))
    assert got == {"a"}
    with pytest.raises(LearnopsError):
        assign_group("exp", "x", {"a": -1, "b": 2})
    with pytest.raises(LearnopsError):
        assign_group("exp", "x", {})


def test_lifecycle_start_record_stop():
    rng = np.random.default_rng(0)
    test = start_test("policy", "ml vs gpt4", WEIGHTS, min_sample_size=50)
    assert test.status == "running"
    for h in _hashes(1200):
        g = test.group_of(h)
        for _ in range(2):
            lift = 0.05 if g == "ml" else 0.0
            got = test.record(
                h,
                {
                    "accuracy": rng.uniform(),
                    "engagement": 0.5 + lift + rng.normal(0, 0.1),
                    "success": float(rng.uniform() < 0.5),
                },
            )
            assert got == g
    result = test.stop()
    assert test.status == "stopped" and test.stopped_at is not None
    assert result.winner == "ml", result.decision
    rec = test.to_record()
    assert rec["status"] == "stopped" and rec["winner"] == "ml"
    assert rec["groups"] == WEIGHTS and rec["n_events"] == 2400
    assert set(result.to_record()) >= {"test_name", "winner", "decision", "results"}
    assert result.analysis["srm"]["planned_split"] == pytest.approx(WEIGHTS)
    with pytest.raises(LearnopsError, match="stopped"):
        test.record("x", {"accuracy": 1.0})
    with pytest.raises(LearnopsError):
        test.stop()


def test_lifecycle_rejects_bad_definitions():
    with pytest.raises(LearnopsError, match="control"):
        ABTest(name="x", groups={"a": 1, "b": 1})
    with pytest.raises(LearnopsError):
        start_test("")
    t = start_test("x")
    with pytest.raises(LearnopsError, match="unknown metric"):
        t.record("h", {"clicks": 1})
    with pytest.raises(LearnopsError, match="no recorded events"):
        t.stop()
