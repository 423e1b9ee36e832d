"""The deploy / don't-deploy verdict that closes an evaluation report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: (metric name, direction, aliases accepted in the metrics dict, what it means)
CHECKS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("accuracy", ">=", ("accuracy",), "accuracy"),
    ("calibration_error", "<=", ("calibration_error", "ece"), "calibration error (ECE)"),
    ("ml_usage", ">=", ("ml_usage",), "ML usage at the chosen threshold"),
    ("latency_ms", "<=", ("latency_ms", "latency_p95_ms"), "latency (ms)"),
)


def _targets_dict(targets: Any) -> dict[str, Any]:
    if hasattr(targets, "model_dump"):
        return dict(targets.model_dump())
    return dict(targets)


def _lookup(metrics: Mapping[str, Any], aliases: tuple[str, ...]) -> Any:
    for key in aliases:
        if key in metrics and metrics[key] is not None:
            return metrics[key]
    return None


def deployment_recommendation(metrics: Mapping[str, Any], targets: Any) -> dict[str, Any]:
    """Compare measured metrics with targets and return the verdict.

    ``targets`` is a mapping (or the config ``Targets`` model) with any of ``accuracy`` and
    ``ml_usage`` (minimums) and ``calibration_error`` and ``latency_ms`` (maximums); only targets
    given are checked. ``metrics`` may name calibration error ``ece`` and latency
    ``latency_p95_ms``. A target whose metric is missing or not a finite number fails.
    Returns ``deploy`` (all checks passed), ``verdict`` (one line), ``reasons`` (one sentence per
    failed check, or one saying all passed) and ``checks`` (name, value, target, comparison,
    passed).
    """
    tgt = _targets_dict(targets)
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    for name, op, aliases, label in CHECKS:
        if name not in tgt or tgt[name] is None:
            continue
        target = float(tgt[name])
        raw = _lookup(metrics, aliases)
        try:
            value = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            value = None
        if value is None or not math.isfinite(value):
            passed = False
            reasons.append(f"{label} was not measured (target {op} {target:g})")
            value = None
        else:
            passed = value >= target if op == ">=" else value <= target
            if not passed:
                word = "below the minimum" if op == ">=" else "above the maximum"
                reasons.append(f"{label} {value:.4g} is {word} {target:g}")
        checks.append(
            {"name": name, "value": value, "target": target, "comparison": op, "passed": passed}
        )
    if not checks:
        reasons.append("no targets to check")
    deploy = bool(checks) and all(c["passed"] for c in checks)
    if deploy:
        reasons = [f"all {len(checks)} checks passed"]
        verdict = "DEPLOY: " + reasons[0]
    else:
        verdict = "DO NOT DEPLOY: " + "; ".join(reasons)
    return {"deploy": deploy, "verdict": verdict, "reasons": reasons, "checks": checks}
