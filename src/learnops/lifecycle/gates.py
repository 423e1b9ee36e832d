"""Deployment gates: when a newly trained version may replace production.

Every check uses the one comparison rule of the package (:func:`learnops.evaluation.metrics.check`:
a minimum is met by value ≥ target, a maximum by value ≤ target, a missing or NaN value fails),
and the absolute targets are the same checks as the evaluation report's recommendation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from learnops.config import RegisterConfig, Targets
from learnops.evaluation.metrics import check, direction_of
from learnops.evaluation.report import target_checks

#: The evaluation targets the decision model's gate checks.
MLP_TARGETS = ("accuracy", "calibration_error")


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


def _decision(checks: list[dict[str, Any]], notes: list[str]) -> GateDecision:
    ok = bool(checks) and all(c["passed"] for c in checks)
    reasons = [c["reason"] for c in checks if not c["passed"]] + notes
    if ok:
        reasons.insert(0, "all gates passed")
    return GateDecision(ok, reasons, checks)


def _vs_production(
    metric: str,
    candidate: Mapping[str, Any],
    production: Mapping[str, Any],
    min_improvement: float,
    label: str,
) -> dict[str, Any]:
    """Candidate ``metric`` against production's improved by ``min_improvement`` (relative)."""
    direction = direction_of(metric)
    base = production.get(metric)
    factor = 1.0 + min_improvement if direction == "higher" else 1.0 - min_improvement
    need = None if base is None else float(base) * factor
    c = check(f"{metric}_vs_production", candidate.get(metric), need, direction, label)
    how = f"by at least {min_improvement:.0%}" if min_improvement else "(not worse)"
    if c["passed"]:
        c["reason"] = f"{label} {_fmt(c['value'])} improves on production {_fmt(base)} {how}"
    else:
        c["reason"] = (
            f"{label} {_fmt(candidate.get(metric))} does not beat production {_fmt(base)} {how} "
            f"(needs {c['comparison']} {_fmt(need)})"
        )
    return c


def mlp_gate(
    candidate: Mapping[str, Any],
    production: Mapping[str, Any] | None,
    cfg: RegisterConfig,
    targets: Targets,
) -> GateDecision:
    """The evaluation targets on accuracy and calibration error (ECE) and, when a production
    model exists, an improvement of at least ``mlp_min_improvement`` (relative) on
    ``mlp_metric`` over production evaluated on the same held-out set."""
    checks = target_checks(candidate, targets, MLP_TARGETS)
    notes = []
    if production is None:
        notes.append("no production model: the absolute gate decides")
    else:
        checks.append(
            _vs_production(
                cfg.mlp_metric, candidate, production, cfg.mlp_min_improvement, cfg.mlp_metric
            )
        )
        if checks[-1]["passed"]:
            notes.append(checks[-1]["reason"])
    return _decision(checks, notes)


#: The IRT gate's absolute check per ``registry.irt_metric``: (params attribute, direction,
#: label) and the metric it compares with production's.
_IRT_RULES: dict[str, tuple[str, str, str, str]] = {
    "accuracy": ("irt_min_accuracy", "higher", "held-out accuracy", "auc"),
    "auc": ("irt_min_auc", "higher", "held-out AUC", "auc"),
    "log_loss": ("irt_max_log_loss", "lower", "held-out log-loss", "log_loss"),
}


def irt_gate(
    candidate: Mapping[str, Any], production: Mapping[str, Any] | None, cfg: RegisterConfig
) -> GateDecision:
    """The absolute check of ``registry.irt_metric`` (default: held-out accuracy at least
    ``irt_min_accuracy``, the seed's rule; or AUC at least ``irt_min_auc``, or log-loss at most
    ``irt_max_log_loss``) and, against production on the same held-out set, AUC not worse (or
    log-loss not worse when the gate is on log-loss). The notes report all three metrics."""
    attr, direction, label, versus = _IRT_RULES[cfg.irt_metric]
    metric = cfg.irt_metric
    checks = [check(metric, candidate.get(metric), getattr(cfg, attr), direction, label)]
    notes = [
        "held-out "
        + ", ".join(f"{k.replace('_', '-')} {_fmt(candidate.get(k))}" for k in _IRT_RULES)
        + f" (gate on {metric})"
    ]
    if production is None:
        notes.append("no production model: the absolute gate decides")
    else:
        name = "AUC" if versus == "auc" else "log-loss"
        checks.append(_vs_production(versus, candidate, production, 0.0, name))
    return _decision(checks, notes)


def learner_gate(
    candidate: Mapping[str, Any], production: Mapping[str, Any] | None
) -> GateDecision:
    """The ability model (``irt.ability_model``) on the temporal split's held-out answers:

    * not worse than static IRT beyond the paired interval: the lower end of the learner-bootstrap
      95% interval of (candidate − static IRT) log-loss is at most 0 (a candidate whose whole
      interval lies above 0 is significantly worse than static IRT and is refused);
    * when a production version exists: held-out log-loss not worse than production's on the same
      answers."""
    checks = [
        check(
            "log_loss_diff_vs_irt",
            candidate.get("log_loss_diff_low"),
            0.0,
            "lower",
            "lower end of the paired 95% interval of log-loss minus static IRT's",
        )
    ]
    d = candidate.get("log_loss_diff_vs_irt")
    notes = [
        f"held-out log-loss {_fmt(candidate.get('log_loss'))} vs static IRT "
        f"{_fmt(candidate.get('log_loss_irt'))}: difference {_fmt(d)} "
        f"[{_fmt(candidate.get('log_loss_diff_low'))}, {_fmt(candidate.get('log_loss_diff_high'))}]"
    ]
    if production is None:
        notes.append("no production model: the comparison with static IRT decides")
    else:
        checks.append(_vs_production("log_loss", candidate, production, 0.0, "log-loss"))
    return _decision(checks, notes)
