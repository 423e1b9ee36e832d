"""Evaluation library: classification, calibration, bootstrap, decisions, off-policy, IRT, report.

Pure functions on numpy arrays and pandas tables; no dependency on the MLP or IRT code, except
``stage`` (the pipeline's evaluate stage, :func:`evaluate_pipeline`), which loads the trained models
lazily, and ``plots`` (matplotlib figures for its report).
"""

from learnops.evaluation.bootstrap import bootstrap_mean_ci, cluster_bootstrap_ci
from learnops.evaluation.calibration import (
    binary_calibration_table,
    ece,
    ece_binary,
    mce,
    mce_binary,
    reliability_table,
)
from learnops.evaluation.classification import classification_report, multiclass_brier
from learnops.evaluation.decisions import (
    ThresholdChoice,
    add_confidence_bucket,
    agreement_table,
    outcomes_by,
    pick_threshold,
    threshold_analysis,
)
from learnops.evaluation.irt_metrics import binary_metrics, by_group
from learnops.evaluation.ope import (
    OPEResult,
    RewardModel,
    cross_fit_rewards,
    direct_method,
    doubly_robust,
    effective_sample_size,
    fit_reward_model,
    importance_weights,
    ips,
    off_policy_evaluation,
    snips,
)
from learnops.evaluation.report import deployment_recommendation
from learnops.evaluation.stage import EvaluationResult, evaluate_pipeline

__all__ = [
    "EvaluationResult",
    "OPEResult",
    "RewardModel",
    "ThresholdChoice",
    "add_confidence_bucket",
    "agreement_table",
    "binary_calibration_table",
    "binary_metrics",
    "bootstrap_mean_ci",
    "by_group",
    "classification_report",
    "cluster_bootstrap_ci",
    "cross_fit_rewards",
    "deployment_recommendation",
    "direct_method",
    "doubly_robust",
    "ece",
    "ece_binary",
    "effective_sample_size",
    "evaluate_pipeline",
    "fit_reward_model",
    "importance_weights",
    "ips",
    "mce",
    "mce_binary",
    "multiclass_brier",
    "off_policy_evaluation",
    "outcomes_by",
    "pick_threshold",
    "reliability_table",
    "snips",
    "threshold_analysis",
]
