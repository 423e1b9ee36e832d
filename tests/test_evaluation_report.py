"""The deploy / don't-deploy verdict on constructed metric dicts."""

from __future__ import annotations

import math

from learnops.config import Targets
from learnops.evaluation import deployment_recommendation

TARGETS = {"accuracy": 0.85, "calibration_error": 0.10, "ml_usage": 0.70, "latency_ms": 100.0}
GOOD = {"accuracy": 0.9, "calibration_error": 0.04, "ml_usage": 0.75, "latency_ms": 12.0}


def test_all_targets_met_deploys():
    rec = deployment_recommendation(GOOD, TARGETS)
    assert rec["deploy"] is True
    assert rec["verdict"].startswith("DEPLOY")
    assert [c["name"] for c in rec["checks"]] == list(TARGETS)
    assert all(c["passed"] for c in rec["checks"])
    assert rec["reasons"] == ["all 4 checks passed"]


def test_boundaries_pass():
    rec = deployment_recommendation(dict(TARGETS), TARGETS)
    assert rec["deploy"] is True


def test_each_failure_blocks_and_is_explained():
    for key, bad in [
        ("accuracy", 0.80),
        ("calibration_error", 0.15),
        ("ml_usage", 0.5),
        ("latency_ms", 250.0),
    ]:
        rec = deployment_recommendation({**GOOD, key: bad}, TARGETS)
        assert rec["deploy"] is False, key
        failed = [c for c in rec["checks"] if not c["passed"]]
        assert [c["name"] for c in failed] == [key]
        assert failed[0]["value"] == bad
        assert len(rec["reasons"]) == 1 and f"{bad:g}" in rec["reasons"][0]
        assert rec["verdict"].startswith("DO NOT DEPLOY")


def test_missing_or_nan_metric_fails_and_aliases_work():
    m = {k: v for k, v in GOOD.items() if k != "latency_ms"}
    rec = deployment_recommendation(m, TARGETS)
    assert rec["deploy"] is False and "not measured" in rec["reasons"][0]
    rec = deployment_recommendation({**GOOD, "accuracy": math.nan}, TARGETS)
    assert rec["deploy"] is False
    aliased = {"accuracy": 0.9, "ece": 0.05, "ml_usage": 0.8, "latency_p95_ms": 40.0}
    assert deployment_recommendation(aliased, TARGETS)["deploy"] is True


def test_accepts_config_targets_and_partial_targets():
    assert deployment_recommendation(GOOD, Targets())["deploy"] is True
    assert deployment_recommendation({"accuracy": 0.7}, {"accuracy": 0.85})["deploy"] is False
    only_acc = deployment_recommendation({"accuracy": 0.9}, {"accuracy": 0.85})
    assert only_acc["deploy"] is True and len(only_acc["checks"]) == 1
    assert deployment_recommendation(GOOD, {})["deploy"] is False
