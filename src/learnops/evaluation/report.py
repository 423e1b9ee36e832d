"""The deploy / don't-deploy verdict that closes an evaluation report, and the target checks the
deployment gates share with it (one comparison rule: :func:`learnops.evaluation.metrics.check`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from learnops.evaluation.metrics import Direction, check, lookup

#: (target name, direction, aliases accepted in the metrics dict, what it means)
CHECKS: tuple[tuple[str, Direction, tuple[str, ...], str], ...] = (
    ("accuracy", "higher", ("accuracy",), "accuracy"),
    ("calibration_error", "lower", ("calibration_error", "ece"), "calibration error (ECE)"),
    ("ml_usage", "higher", ("ml_usage",), "ML usage at the chosen threshold"),
    ("latency_ms", "lower", ("latency_ms", "latency_p95_ms"), "latency (ms)"),
)


def _targets_dict(targets: Any) -> dict[str, Any]:
    if hasattr(targets, "model_dump"):
        return dict(targets.model_dump())
    return dict(targets)


def target_checks(
    metrics: Mapping[str, Any], targets: Any, names: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """One :func:`~learnops.evaluation.metrics.check` per target given (``accuracy`` and
    ``ml_usage`` are minimums, ``calibration_error`` and ``latency_ms`` maximums), optionally
    only those in ``names``. ``metrics`` may name calibration error ``ece`` and latency
    ``latency_p95_ms``; a target whose metric is missing or not finite fails."""
    tgt = _targets_dict(targets)
    wanted = None if names is None else set(names)
    return [
        check(name, lookup(metrics, *aliases), tgt[name], direction, label)
        for name, direction, aliases, label in CHECKS
        if (wanted is None or name in wanted) and tgt.get(name) is not None
    ]


def deployment_recommendation(metrics: Mapping[str, Any], targets: Any) -> dict[str, Any]:
    """Compare measured metrics with targets and return the verdict.

    ``targets`` is a mapping (or the config ``Targets`` model); see :func:`target_checks`.
    Returns ``deploy`` (all checks passed), ``verdict`` (one line), ``reasons`` (one sentence per
    failed check, or one saying all passed) and ``checks`` (name, value, target, direction,
    comparison, passed, reason).
    """
    checks = target_checks(metrics, targets)
    reasons = [c["reason"] for c in checks if not c["passed"]]
    if not checks:
        reasons.append("no targets to check")
    deploy = bool(checks) and all(c["passed"] for c in checks)
    if deploy:
        reasons = [f"all {len(checks)} checks passed"]
        verdict = "DEPLOY: " + reasons[0]
    else:
        verdict = "DO NOT DEPLOY: " + "; ".join(reasons)
    return {"deploy": deploy, "verdict": verdict, "reasons": reasons, "checks": checks}
