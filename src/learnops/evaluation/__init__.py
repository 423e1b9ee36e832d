"""Evaluation library: metric definitions, classification, calibration, bootstrap, decisions,
off-policy evaluation, IRT metrics, the deploy recommendation.

Pure functions on numpy arrays and pandas tables, with no dependency on the model, stage or
lifecycle packages; :mod:`learnops.evaluation.metrics` holds the one definition of every metric
and the one rule comparing a metric with a target. ``plots`` draws the evaluation report's
figures. Exports load lazily, so importing a submodule stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnops._lazy import lazy_exports

if TYPE_CHECKING:
    from learnops.evaluation.bootstrap import (
        bootstrap_mean_ci,
        cluster_bootstrap_ci,
        cluster_bootstrap_cis,
    )
    from learnops.evaluation.calibration import (
        binary_calibration_table,
        ece,
        ece_binary,
        mce,
        reliability_table,
    )
    from learnops.evaluation.classification import classification_report
    from learnops.evaluation.decisions import (
        ThresholdChoice,
        add_confidence_bucket,
        agreement_table,
        outcomes_by,
        pick_threshold,
        threshold_analysis,
    )
    from learnops.evaluation.irt_metrics import binary_metrics, by_group
    from learnops.evaluation.metrics import check, classification_metrics, meets
    from learnops.evaluation.ope import (
        OPEResult,
        RewardModel,
        cross_fit_rewards,
        doubly_robust,
        effective_sample_size,
        fit_reward_model,
        ips,
        off_policy_evaluation,
        snips,
    )
    from learnops.evaluation.report import deployment_recommendation

_WHERE = {
    "bootstrap_mean_ci": "bootstrap",
    "cluster_bootstrap_ci": "bootstrap",
    "cluster_bootstrap_cis": "bootstrap",
    "binary_calibration_table": "calibration",
    "ece": "calibration",
    "ece_binary": "calibration",
    "mce": "calibration",
    "reliability_table": "calibration",
    "classification_report": "classification",
    "ThresholdChoice": "decisions",
    "add_confidence_bucket": "decisions",
    "agreement_table": "decisions",
    "outcomes_by": "decisions",
    "pick_threshold": "decisions",
    "threshold_analysis": "decisions",
    "binary_metrics": "irt_metrics",
    "by_group": "irt_metrics",
    "check": "metrics",
    "classification_metrics": "metrics",
    "meets": "metrics",
    "OPEResult": "ope",
    "RewardModel": "ope",
    "cross_fit_rewards": "ope",
    "doubly_robust": "ope",
    "effective_sample_size": "ope",
    "fit_reward_model": "ope",
    "ips": "ope",
    "off_policy_evaluation": "ope",
    "snips": "ope",
    "deployment_recommendation": "report",
}

__all__ = [
    "OPEResult",
    "RewardModel",
    "ThresholdChoice",
    "add_confidence_bucket",
    "agreement_table",
    "binary_calibration_table",
    "binary_metrics",
    "bootstrap_mean_ci",
    "by_group",
    "check",
    "classification_metrics",
    "classification_report",
    "cluster_bootstrap_ci",
    "cluster_bootstrap_cis",
    "cross_fit_rewards",
    "deployment_recommendation",
    "doubly_robust",
    "ece",
    "ece_binary",
    "effective_sample_size",
    "fit_reward_model",
    "ips",
    "mce",
    "meets",
    "off_policy_evaluation",
    "outcomes_by",
    "pick_threshold",
    "reliability_table",
    "snips",
    "threshold_analysis",
]

__getattr__ = lazy_exports(__name__, _WHERE)
