"""Deployment gates: when a newly trained version may replace production."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from learnops.config import RegisterConfig, Targets


@dataclass
class GateDecision:
    """Whether to deploy, and every check behind the verdict."""

    deploy: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"deploy": self.deploy, "reasons": self.reasons, "checks": self.checks}


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _check(checks: list, name: str, value: float | None, target: float, op: str) -> bool:
    ok = value is not None and (
        value > target if op == ">" else value >= target if op == ">=" else value < target
    )
    checks.append({"name": name, "value": value, "target": target, "op": op, "passed": ok})
    return ok


def mlp_gate(
    candidate: Mapping[str, float],
    production: Mapping[str, float] | None,
    cfg: RegisterConfig,
    targets: Targets,
) -> GateDecision:
    """Absolute targets (accuracy, calibration error) and, when a production model exists, a
    relative improvement > ``mlp_min_improvement`` on ``mlp_metric`` over production evaluated
    on the same held-out set."""
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    metric = cfg.mlp_metric
    ok = _check(checks, "accuracy", candidate.get("accuracy"), targets.accuracy, ">=")
    if not ok:
        reasons.append(
            f"accuracy {_fmt(candidate.get('accuracy'))} below the target {targets.accuracy}"
        )
    ece = candidate.get("ece")
    if ece is not None and not _check(
        checks, "calibration_error", ece, targets.calibration_error, "<"
    ):
        ok = False
        reasons.append(f"calibration error {ece:.4f} not below {targets.calibration_error}")
    if production is None:
        reasons.append("no production model: the absolute gate decides")
    else:
        base = production.get(metric)
        need = None if base is None else base * (1.0 + cfg.mlp_min_improvement)
        if need is None or not _check(
            checks, f"{metric}_vs_production", candidate.get(metric), need, ">"
        ):
            ok = False
            reasons.append(
                f"{metric} {_fmt(candidate.get(metric))} does not beat production {_fmt(base)} by "
                f"more than {cfg.mlp_min_improvement:.0%} (needs > {_fmt(need)})"
            )
        else:
            reasons.append(
                f"{metric} improves on production {_fmt(base)} by more than "
                f"{cfg.mlp_min_improvement:.0%}"
            )
    if ok:
        reasons.insert(0, "all gates passed")
    return GateDecision(ok, reasons, checks)


def irt_gate(
    candidate: Mapping[str, float], production: Mapping[str, float] | None, cfg: RegisterConfig
) -> GateDecision:
    """Held-out accuracy > ``irt_min_accuracy`` and AUC not worse than production's (same set)."""
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    ok = _check(checks, "accuracy", candidate.get("accuracy"), cfg.irt_min_accuracy, ">")
    if not ok:
        reasons.append(
            f"held-out accuracy {_fmt(candidate.get('accuracy'))} not above {cfg.irt_min_accuracy}"
        )
    if production is None:
        reasons.append("no production model: the absolute gate decides")
    elif not _check(
        checks, "auc_vs_production", candidate.get("auc"), production.get("auc", float("inf")), ">="
    ):
        ok = False
        reasons.append(
            f"AUC {_fmt(candidate.get('auc'))} worse than production {_fmt(production.get('auc'))}"
        )
    if ok:
        reasons.insert(0, "all gates passed")
    return GateDecision(ok, reasons, checks)
