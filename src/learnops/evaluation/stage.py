"""The pipeline's ``evaluate`` stage: the trained decision model and IRT model on held-out data.

:func:`evaluate_pipeline` loads ``models/mlp`` and ``models/irt``, evaluates them on the learners
and responses their training stages left out (:func:`learnops.lifecycle.retrain.mlp_holdout` and
:func:`learnops.lifecycle.retrain.irt_holdout`), writes the DVC metrics and plot files, records the
evaluation in the event store. The notebook ``04_evaluate.ipynb`` plots the returned tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, log_loss

from learnops.config import Params
from learnops.contracts import ACTIONS, FEATURES, OUTCOME_COLUMNS
from learnops.errors import LearnopsError
from learnops.evaluation.bootstrap import bootstrap_mean_ci, cluster_bootstrap_ci
from learnops.evaluation.calibration import (
    binary_calibration_table,
    ece,
    mce,
    reliability_table,
)
from learnops.evaluation.classification import classification_report
from learnops.evaluation.decisions import (
    CONFIDENCE_EDGES,
    ThresholdChoice,
    add_confidence_bucket,
    agreement_table,
    outcomes_by,
    pick_threshold,
    threshold_analysis,
)
from learnops.evaluation.irt_metrics import binary_metrics, by_group
from learnops.evaluation.ope import cross_fit_rewards, off_policy_evaluation
from learnops.evaluation.report import deployment_recommendation

__all__ = [
    "OPE_REWARD",
    "EvaluationResult",
    "evaluate_pipeline",
    "measure_latency",
    "model_version_label",
]

#: The logged outcome the off-policy evaluation estimates the policies' value on.
OPE_REWARD = "next_engagement"
_LABELS = list(ACTIONS)
_K = len(ACTIONS)


@dataclass
class EvaluationResult:
    """Everything the evaluate stage measured: tables and arrays for the report, and ``metrics``
    (the JSON document written to ``reports/metrics/evaluate.json``)."""

    model_version: str
    temperature: float
    test: pd.DataFrame
    """Held-out decisions with ``model_action``, ``model_confidence``, ``correct`` and
    ``confidence_bucket`` added."""
    y: np.ndarray
    """Logged action indices (ACTIONS order) of the test decisions."""
    proba: np.ndarray
    """Calibrated (temperature-scaled) class probabilities, (n, 5)."""
    proba_uncalibrated: np.ndarray
    """Probabilities at T = 1, (n, 5)."""
    report: dict[str, Any]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    confusion_normalized: pd.DataFrame
    calibration: pd.DataFrame
    """ECE/MCE/log-loss before and after temperature scaling, equal-width and equal-mass bins."""
    reliability: dict[tuple[str, str], pd.DataFrame]
    """Reliability tables keyed by (``before``|``after``, ``uniform``|``quantile``)."""
    bootstrap: pd.DataFrame
    agreement_by_action: pd.DataFrame
    agreement_by_confidence: pd.DataFrame
    agreement_overall: pd.DataFrame
    thresholds: pd.DataFrame
    threshold_choice: ThresholdChoice
    current_threshold: float
    outcomes_by_action: pd.DataFrame
    outcomes_by_decider: pd.DataFrame
    ope: pd.DataFrame
    """One row per (policy, estimator), plus the logged policy's observed mean."""
    irt_test: pd.DataFrame
    irt_metrics: dict[str, Any]
    irt_by_module: pd.DataFrame
    irt_calibration: pd.DataFrame
    latency_ms: np.ndarray
    latency: dict[str, float]
    recommendation: dict[str, Any]
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    evaluation_id: int | None = None


# -- helpers ------------------------------------------------------------------------------------
def model_version_label(model: Any) -> str:
    """``pipeline-`` + the first 12 hex digits of the model's weights sha256 (from metadata)."""
    sha = str(getattr(model, "metadata", {}).get("weights_sha256") or "")
    return "pipeline-" + (sha[:12] if sha else "unknown")


def measure_latency(
    model: Any, rows: list[Mapping[str, Any]], n_calls: int = 500, warmup: int = 20
) -> np.ndarray:
    """Wall-clock milliseconds of ``n_calls`` in-process single-decision ``learnops.mlp.predict``
    calls cycling over ``rows`` (after ``warmup`` untimed calls)."""
    from learnops.mlp import predict

    if not rows:
        raise LearnopsError("no decisions to time")
    for i in range(warmup):
        predict(model, rows[i % len(rows)])
    out = np.empty(n_calls)
    for i in range(n_calls):
        t0 = time.perf_counter()
        predict(model, rows[i % len(rows)])
        out[i] = (time.perf_counter() - t0) * 1000.0
    return out


def _clean(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _ci(estimate: float, low: float, high: float) -> dict[str, float]:
    return {"estimate": estimate, "ci_low": low, "ci_high": high}


def _bootstrap_table(
    test: pd.DataFrame, proba: np.ndarray, y: np.ndarray, params: Params
) -> pd.DataFrame:
    """Learner-clustered bootstrap CIs of accuracy, macro-F1, ECE and log-loss (same draws)."""
    n_bins = params.evaluate.ece_bins
    idx = list(range(_K))
    slim = pd.DataFrame(
        {"learner_hash": test["learner_hash"].to_numpy(), "_row": np.arange(len(y))}
    )
    pred = proba.argmax(axis=1)

    def rows(df: pd.DataFrame) -> np.ndarray:
        return df["_row"].to_numpy()

    stats: dict[str, Callable[[pd.DataFrame], float]] = {
        "accuracy": lambda d: float(np.mean(pred[rows(d)] == y[rows(d)])),
        "macro_f1": lambda d: float(
            f1_score(y[rows(d)], pred[rows(d)], labels=idx, average="macro", zero_division=0)
        ),
        "ece": lambda d: ece(y[rows(d)], proba[rows(d)], n_bins=n_bins),
        "log_loss": lambda d: float(log_loss(y[rows(d)], proba[rows(d)], labels=idx)),
    }
    records = []
    n_boot = params.evaluate.bootstrap
    for name, fn in stats.items():
        if n_boot >= 1:
            est, lo, hi = cluster_bootstrap_ci(
                slim, fn, cluster_col="learner_hash", n_boot=n_boot, seed=params.seed
            )
        else:
            est, lo, hi = fn(slim), float("nan"), float("nan")
        records.append({"metric": name, "estimate": est, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(records)


def _calibration(
    y: np.ndarray, before: np.ndarray, after: np.ndarray, n_bins: int
) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    rows = []
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for when, p in (("before", before), ("after", after)):
        row: dict[str, Any] = {"probabilities": when}
        for strategy in ("uniform", "quantile"):
            tables[(when, strategy)] = reliability_table(y, p, n_bins, strategy)
            row[f"ece_{strategy}"] = ece(y, p, n_bins, strategy)
            row[f"mce_{strategy}"] = mce(y, p, n_bins, strategy)
        row["log_loss"] = float(log_loss(y, p, labels=list(range(_K))))
        row["mean_confidence"] = float(p.max(axis=1).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("probabilities"), tables


def _ope(
    test: pd.DataFrame, y: np.ndarray, proba: np.ndarray, params: Params
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """IPS/SNIPS/DR of the model's argmax and stochastic policies vs the logged policy's mean."""
    r = test[OPE_REWARD].astype(float).to_numpy()
    p_log = test["propensity"].astype(float).to_numpy()
    X = test[list(FEATURES)].to_numpy(dtype=float)
    q_hat = cross_fit_rewards(X, y, r, _K, n_folds=5, seed=params.seed)
    policies = {
        "deterministic": np.eye(_K)[proba.argmax(axis=1)],
        "stochastic": proba / proba.sum(axis=1, keepdims=True),
    }
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"reward": OPE_REWARD, "reward_model": "ridge, 5-fold cross-fitted"}
    for name, pi in policies.items():
        res = off_policy_evaluation(r, p_log, pi, y, q_hat=q_hat)
        out[name] = {}
        for est, o in res.items():
            d = o.to_dict()
            rows.append({"policy": name, **d})
            out[name][est] = {k: d[k] for k in ("value", "se", "ci_low", "ci_high", "ess")}
            out[name][est]["max_weight"] = d["max_weight"]
    n_boot = max(params.evaluate.bootstrap, 1)
    mean, lo, hi = bootstrap_mean_ci(
        r, clusters=test["learner_hash"].to_numpy(), n_boot=n_boot, seed=params.seed
    )
    rows.append(
        {
            "policy": "logged",
            "estimator": "observed mean",
            "value": mean,
            "se": float("nan"),
            "ci_low": lo,
            "ci_high": hi,
            "n": len(r),
            "ess": float(len(r)),
            "max_weight": 1.0,
        }
    )
    out["logged"] = {"value": mean, "ci_low": lo, "ci_high": hi, "n": len(r)}
    return pd.DataFrame(rows), out


def _flat_ope_deltas(ope: Mapping[str, Any]) -> dict[str, float]:
    logged = ope["logged"]["value"]
    return {
        f"{pol}_{est}_minus_logged": ope[pol][est]["value"] - logged
        for pol in ("deterministic", "stochastic")
        for est in ope[pol]
    }


# -- the stage ----------------------------------------------------------------------------------
def evaluate_pipeline(
    params: Params,
    *,
    write: bool = True,
    record: bool = True,
    latency_calls: int = 500,
) -> EvaluationResult:
    """Evaluate ``models/mlp`` and ``models/irt`` on the pipeline's held-out data.

    The MLP is scored on the learners :func:`~...retrain.mlp_holdout` left out (metrics,
    calibration before/after temperature scaling, learner-clustered bootstrap CIs, agreement with
    the logged ML and LLM decisions, confidence thresholds, outcomes, off-policy value of its
    policy on ``next_engagement``, single-decision latency); the IRT model on each learner's last
    responses (:func:`~...retrain.irt_holdout`). A deploy / don't-deploy verdict checks
    ``params.evaluate.targets``. With ``write`` the metrics JSON and DVC plot CSVs are written
    atomically under ``paths.reports_dir``; with ``record`` the evaluation is stored in the event
    store. Raises LearnopsError when a model or an input table is missing.
    """
    from learnops import irt
    from learnops.data.splits import irt_holdout, mlp_holdout
    from learnops.io import read_table, write_json, write_table
    from learnops.mlp import load as load_mlp
    from learnops.mlp.calibration import apply_temperature
    from learnops.mlp.features import feature_matrix

    processed = params.path(params.paths.processed_dir)
    models_dir = params.path(params.paths.models_dir)
    for d in (models_dir / "mlp", models_dir / "irt"):
        if not d.is_dir():
            raise LearnopsError(f"no trained model at {d}: run its pipeline stage first")
    model = load_mlp(models_dir / "mlp")
    fit = irt.load(models_dir / "irt")
    version = model_version_label(model)
    ev = params.evaluate
    n_bins = ev.ece_bins

    # -- MLP on the held-out learners -----------------------------------------------------------
    decisions = read_table(processed / "decisions.parquet")
    test = mlp_holdout(decisions, params)[1]
    if test.empty:
        raise LearnopsError("the MLP held-out set is empty")
    unknown = sorted(set(test["action"].astype(str)) - set(ACTIONS))
    if unknown:
        raise LearnopsError(f"unknown logged action(s) in the test set: {unknown}")
    y = test["action"].astype(str).map({a: i for i, a in enumerate(ACTIONS)}).to_numpy(int)
    logits, _ = model.logits_and_delta(feature_matrix(test))
    proba_t1 = apply_temperature(logits, 1.0)
    proba = apply_temperature(logits, model.temperature)

    report = classification_report(y, proba, _LABELS)
    per_class = pd.DataFrame([{"action": a, **report["per_class"][a]} for a in _LABELS]).astype(
        {"support": int}
    )
    confusion = pd.DataFrame(report["confusion_matrix"], index=_LABELS, columns=_LABELS)
    confusion_norm = pd.DataFrame(
        report["confusion_matrix_normalized"], index=_LABELS, columns=_LABELS
    )
    for cm in (confusion, confusion_norm):
        cm.index.name, cm.columns.name = "actual", "predicted"
    calibration, reliability = _calibration(y, proba_t1, proba, n_bins)
    boot = _bootstrap_table(test, proba, y, params)

    pred = proba.argmax(axis=1)
    test = test.copy()
    test["model_action"] = np.asarray(ACTIONS, dtype=object)[pred]
    test["model_confidence"] = proba.max(axis=1)
    test["correct"] = (pred == y).astype(int)
    test = add_confidence_bucket(test, "model_confidence", CONFIDENCE_EDGES)
    agree_action = agreement_table(test, by=["decided_by", "action"])
    agree_conf = agreement_table(test, by=["decided_by", "confidence_bucket"])
    agree_all = agreement_table(test, by=["decided_by"])

    thresholds = threshold_analysis(test["model_confidence"], test["correct"])
    choice = pick_threshold(thresholds, ev.targets.ml_usage, ev.targets.accuracy)
    current = float(params.mlp.confidence_threshold)
    at_current = test["model_confidence"] >= current
    usage_current = float(at_current.mean())
    acc_current = float(test.loc[at_current, "correct"].mean()) if at_current.any() else None

    outcome_cols = [c for c in OUTCOME_COLUMNS if c in test.columns]
    out_action = outcomes_by(test, by="action", metrics=outcome_cols)
    out_decider = outcomes_by(test, by="decided_by", metrics=outcome_cols)

    ope_table, ope = _ope(test, y, proba, params)

    rows = test[list(FEATURES)].head(500).to_dict("records")
    latencies = measure_latency(model, rows, n_calls=latency_calls)
    latency = {f"p{q}": float(np.percentile(latencies, q)) for q in (50, 95, 99)}
    latency["mean"] = float(latencies.mean())

    # -- IRT on each learner's last responses ---------------------------------------------------
    responses = read_table(processed / "responses.parquet")
    irt_test = irt_holdout(responses, params)[1].copy()
    if irt_test.empty:
        raise LearnopsError("the IRT held-out set is empty")
    irt_test["p_correct"] = fit.predict(irt_test)
    yc = irt_test["correct"].astype(float).to_numpy()
    irt_m = binary_metrics(yc, irt_test["p_correct"], n_bins=n_bins)
    irt_mod = (
        by_group(yc, irt_test["p_correct"], irt_test["module"], n_bins=n_bins)
        if "module" in irt_test.columns
        else pd.DataFrame()
    )
    irt_cal = binary_calibration_table(yc, irt_test["p_correct"], n_bins=n_bins)

    # -- verdict and metrics --------------------------------------------------------------------
    b = boot.set_index("metric")
    ece_after = float(calibration.loc["after", "ece_uniform"])
    rec = deployment_recommendation(
        {
            "accuracy": report["accuracy"],
            "calibration_error": ece_after,
            "ml_usage": usage_current,
            "latency_ms": latency["p95"],
        },
        ev.targets,
    )
    metrics: dict[str, Any] = {
        "model_version": version,
        "temperature": float(model.temperature),
        "n_test": int(report["n"]),
        "n_test_learners": int(test["learner_hash"].nunique()),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "weighted_f1": report["weighted"]["f1"],
        "log_loss": report["log_loss"],
        "brier": report["brier"],
        "ece": ece_after,
        "mce": float(calibration.loc["after", "mce_uniform"]),
        "ece_quantile": float(calibration.loc["after", "ece_quantile"]),
        "mce_quantile": float(calibration.loc["after", "mce_quantile"]),
        "ci": {m: _ci(*b.loc[m, ["estimate", "ci_low", "ci_high"]]) for m in b.index},
        "bootstrap": {"n_boot": ev.bootstrap, "seed": params.seed, "cluster": "learner_hash"},
        "calibration": {when: calibration.loc[when].to_dict() for when in ("before", "after")},
        "per_class": {
            r["action"]: {k: r[k] for k in ("precision", "recall", "f1", "support")}
            for r in per_class.to_dict("records")
        },
        "ml_usage": usage_current,
        "threshold": {
            "current": current,
            "ml_usage_at_current": usage_current,
            "ml_accuracy_at_current": acc_current,
            "chosen": choice.threshold,
            "chosen_ml_usage": choice.ml_usage,
            "chosen_ml_accuracy": choice.ml_accuracy,
            "reason": choice.reason,
        },
        "agreement": {
            r["decided_by"]: {"n": r["n"], "agreement": r["agreement"]}
            for r in agree_all.to_dict("records")
        },
        "ope": {**ope, "deltas": _flat_ope_deltas(ope)},
        "irt": {
            "model": fit.model,
            **{k: v for k, v in irt_m.items()},
        },
        "latency_ms": latency,
        "recommendation": {k: rec[k] for k in ("deploy", "verdict", "reasons")},
    }
    metrics = _clean(metrics)

    result = EvaluationResult(
        model_version=version,
        temperature=float(model.temperature),
        test=test,
        y=y,
        proba=proba,
        proba_uncalibrated=proba_t1,
        report=report,
        per_class=per_class,
        confusion=confusion,
        confusion_normalized=confusion_norm,
        calibration=calibration,
        reliability=reliability,
        bootstrap=boot,
        agreement_by_action=agree_action,
        agreement_by_confidence=agree_conf,
        agreement_overall=agree_all,
        thresholds=thresholds,
        threshold_choice=choice,
        current_threshold=current,
        outcomes_by_action=out_action,
        outcomes_by_decider=out_decider,
        ope=ope_table,
        irt_test=irt_test,
        irt_metrics=irt_m,
        irt_by_module=irt_mod,
        irt_calibration=irt_cal,
        latency_ms=latencies,
        latency=latency,
        recommendation=rec,
        metrics=metrics,
    )

    if write:
        reports = params.path(params.paths.reports_dir)
        paths = {
            "metrics": reports / "metrics" / "evaluate.json",
            "confusion": reports / "plots" / "evaluate" / "confusion.csv",
            "calibration": reports / "plots" / "evaluate" / "calibration.csv",
            "threshold": reports / "plots" / "evaluate" / "threshold.csv",
        }
        write_json(paths["metrics"], metrics)
        write_table(
            paths["confusion"],
            pd.DataFrame({"actual": test["action"].astype(str), "predicted": test["model_action"]}),
        )
        cal = reliability[("after", "uniform")]
        write_table(
            paths["calibration"],
            cal.loc[cal["count"] > 0, ["bin", "mean_confidence", "accuracy", "count"]],
        )
        thr = thresholds.loc[thresholds["ml_accuracy"].notna(), ["threshold", "ml_usage"]]
        thr = thr.assign(ml_accuracy=thresholds.loc[thr.index, "ml_accuracy"])
        write_table(paths["threshold"], thr.round(6))
        result.paths = paths

    if record:
        from learnops.data.store import EventStore

        store = EventStore(params.db_url)
        try:
            result.evaluation_id = store.record_evaluation(
                "mlp", version, metrics, accuracy=metrics["accuracy"]
            )
        finally:
            store.dispose()
    return result
