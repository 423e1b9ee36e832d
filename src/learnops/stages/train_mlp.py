"""The ``train_mlp`` stage: train the decision model on the learners the evaluation leaves out.

Reads ``data/processed/decisions.parquet``, holds out the evaluation learners
(:func:`learnops.data.splits.mlp_holdout`), trains the MLP (DVCLive logs per epoch into
``reports/dvclive/train_mlp``), saves ``models/mlp``, compares it with the majority and logistic
regression baselines and writes ``reports/metrics/train_mlp.json``. Training seconds go to
``reports/timings/train_mlp.json``. The report also compares the current loss with class
weighting and logit adjustment for the rare actions (:mod:`learnops.mlp.rare`; one extra training).

No data (issue 22, item 14): when the export window holds no decisions (e.g. only imported
responses), the stage trains nothing and returns a :class:`~learnops.stages.Skipped` (*No data in
the export window: train_mlp skipped; the previous model is kept*) instead of a
:class:`TrainMlpResult`, so that ``dvc repro`` goes on. ``models/mlp`` stays as the last training
left it (the DVC out is ``persist: true``; without a previous model it is created empty), and
``train_mlp.json`` says so::

    {"skipped": true, "reason": "no decisions in the export window (… is empty)",
     "kept_model": {"weights_sha256": …, "data_fingerprint": …, "n_rows": …,
                    "accuracy": …, "macro_f1": …, …}}

``kept_model`` (present only when a previous model exists) holds the kept model's identity and
the validation metrics recorded in its ``metadata.json`` when it was trained (the
:data:`METRIC_KEYS` it has), so ``dvc metrics show`` still tells what is deployed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS

if TYPE_CHECKING:
    from learnops.config import Params
    from learnops.mlp import TrainResult
    from learnops.mlp.importance import Importance
    from learnops.mlp.rare import RareActions
    from learnops.stages import Skipped

__all__ = [
    "METRIC_KEYS",
    "TrainMlpResult",
    "action_mix",
    "metrics_table",
    "model_set_summary",
    "run",
    "train_model_set",
]

STAGE = "train_mlp"

#: Keys of ``TrainResult.metrics`` copied into ``reports/metrics/train_mlp.json``.
METRIC_KEYS: tuple[str, ...] = (
    "accuracy", "macro_f1", "nll", "nll_uncalibrated", "ece", "ece_uncalibrated", "brier",
    "temperature", "best_epoch", "epochs_run", "n_train", "n_val", "n_cal", "per_class_recall",
)  # fmt: skip

#: Validation metrics shown in the report, in display order.
VALIDATION_KEYS: tuple[str, ...] = (
    "accuracy", "macro_f1", "nll", "nll_uncalibrated", "ece", "ece_uncalibrated", "brier",
    "temperature",
)  # fmt: skip


@dataclass
class TrainMlpResult:
    """What the ``train_mlp`` stage measured and wrote (everything its notebook shows)."""

    data_summary: pd.DataFrame
    """Per action: decisions, share, and counts by ``decided_by`` when logged."""
    feature_summary: pd.DataFrame
    """describe() of the 18 features on the decisions used for training and validation."""
    split_summary: pd.DataFrame
    """Counts: exported / held-out / training / validation rows and learners, epochs."""
    history: pd.DataFrame
    """Per epoch: train/val loss and accuracy (no wall-clock column)."""
    best_epoch: int
    validation: pd.DataFrame
    """Validation metrics of the MLP (one column, ``validation``)."""
    reliability: pd.DataFrame
    """Reliability bins before and after temperature scaling (``series`` names the curve)."""
    ece: dict[str, float]
    """ECE per reliability ``series``."""
    coverage: pd.DataFrame
    """Share of validation decisions at or above the confidence threshold, and their accuracy."""
    per_class: pd.DataFrame
    """Per action (index): support, recall, precision on the validation learners."""
    baselines: pd.DataFrame
    metrics: dict[str, Any]
    """The document written to ``reports/metrics/train_mlp.json``."""
    model_dir: Path
    seconds: float
    train_result: TrainResult = field(repr=False)
    rare_actions: RareActions | None = None
    """Class weighting and logit adjustment against the current loss (:mod:`learnops.mlp.rare`)."""
    importance: Importance | None = None
    """Permutation importance, mean |attribution|, PD/ICE (:mod:`learnops.mlp.importance`)."""

    skipped: ClassVar[bool] = False

    @property
    def metrics_table(self) -> pd.DataFrame:
        """:attr:`metrics` flattened to one ``value`` column (nested keys joined by dots)."""
        return metrics_table(self.metrics)


def action_mix(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions and share per action (ACTIONS order), plus ``decided_by_*`` counts if logged."""
    mix = decisions["action"].value_counts().reindex(list(ACTIONS), fill_value=0)
    total = max(int(mix.sum()), 1)
    summary = pd.DataFrame({"decisions": mix, "share": mix / total})
    summary.index.name = "action"
    if "decided_by" in decisions.columns:
        by = pd.crosstab(decisions["action"], decisions["decided_by"])
        by = by.reindex(list(ACTIONS), fill_value=0)
        summary = summary.join(by.add_prefix("decided_by_"))
    return summary


def split_summary(
    exported: pd.DataFrame, held_out: pd.DataFrame, result: TrainResult
) -> pd.DataFrame:
    """One ``value`` column of counts describing where the decisions went."""
    split = result.split.summary()
    rows = {
        "exported decisions": len(exported),
        "exported learners": exported["learner_hash"].nunique(),
        "held-out decisions (evaluate stage)": len(held_out),
        "held-out learners (evaluate stage)": held_out["learner_hash"].nunique(),
        "training rows": split["n_train"],
        "validation rows (early stopping, metrics)": split["n_val"],
        "calibration rows (temperature)": split.get("n_cal", 0),
        "training learners": split["n_train_learners"],
        "validation learners": split["n_val_learners"],
        "calibration learners": split.get("n_cal_learners", 0),
        "epochs run": result.metrics["epochs_run"],
        "best epoch": result.metrics["best_epoch"],
    }
    return pd.Series({k: int(v) for k, v in rows.items()}, name="value").to_frame()


def reliability_data(result: TrainResult, n_bins: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Reliability bins and ECE of the validation probabilities before and after temperature."""
    from learnops.mlp.calibration import expected_calibration_error, reliability_table

    series = {
        "before (T = 1)": result.val_proba(calibrated=False),
        f"after (T = {result.temperature:.2f})": result.val_proba(calibrated=True),
    }
    tables, ece = [], {}
    for name, proba in series.items():
        t = reliability_table(result.val_y, proba, n_bins)
        tables.append(t.assign(series=name)[["series", *t.columns]])
        ece[name] = float(expected_calibration_error(result.val_y, proba, n_bins))
    return pd.concat(tables, ignore_index=True), ece


def confidence_coverage(result: TrainResult, threshold: float) -> pd.DataFrame:
    """At the agent's threshold: share of validation decisions the model would take, accuracy."""
    proba = result.val_proba()
    conf = proba.max(axis=1)
    taken = conf >= threshold
    correct = proba.argmax(axis=1) == result.val_y
    nan = float("nan")
    rows = {
        "confidence threshold": threshold,
        "validation decisions": len(conf),
        "share taken by the model": float(taken.mean()) if len(conf) else nan,
        "accuracy when taken": float(correct[taken].mean()) if taken.any() else nan,
        "accuracy overall": float(correct.mean()) if len(conf) else nan,
    }
    return pd.Series(rows, name="value", dtype=float).to_frame()


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """A metrics document as one ``value`` column, nested keys joined by dots."""
    flat = pd.json_normalize(metrics, sep=".").to_dict("records")[0]
    table = pd.Series(flat, name="value", dtype=object).to_frame()
    table.index.name = "metric"
    return table


def metrics_document(result: TrainResult, baselines: pd.DataFrame) -> dict[str, Any]:
    """The ``train_mlp.json`` DVC metrics: validation metrics, epochs, sizes and baselines."""
    metrics = {k: result.metrics[k] for k in METRIC_KEYS}
    if "difficulty_delta_mae" in result.metrics:
        metrics["difficulty_delta_mae"] = result.metrics["difficulty_delta_mae"]
    metrics["baselines"] = {
        "majority_accuracy": baselines.loc["majority", "accuracy"],
        "logistic_regression_accuracy": baselines.loc["logistic_regression", "accuracy"],
        "logistic_regression_nll": baselines.loc["logistic_regression", "nll"],
    }
    return metrics


def kept_model(model_dir: Path) -> dict[str, Any]:
    """The identity and recorded validation metrics of the model in ``model_dir`` (its
    ``metadata.json``), or ``{}`` when there is none (``{"unreadable": path}`` when its
    metadata.json is not JSON)."""
    import json

    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return {"unreadable": str(meta_path)}
    data = meta.get("data") or {}
    recorded = meta.get("metrics") or {}
    return {
        "weights_sha256": meta.get("weights_sha256"),
        "data_fingerprint": data.get("fingerprint"),
        "n_rows": data.get("n_rows"),
        **{k: recorded[k] for k in METRIC_KEYS if k in recorded},
    }


def train_model_set(params: Params, decisions: pd.DataFrame, result: TrainResult) -> Any:
    """The model set ``mlp.cohort_by`` / ``mlp.ensemble`` ask for, built around the global model
    already trained (``result``), or None when neither is configured (the single model)."""
    cfg = params.mlp
    if cfg.cohort_by is None and cfg.ensemble <= 1:
        return None
    if cfg.ensemble > 1:
        from learnops.mlp.ensemble import train_ensemble

        return train_ensemble(decisions, cfg, params.seed, cfg.ensemble, first=result.model)
    from learnops.mlp.cohorts import train_cohort_models

    if cfg.cohort_by == "module":
        from learnops.evaluation.slices import decision_modules
        from learnops.stages import processed_table

        _, responses = processed_table(params, "responses")
        decisions = decisions.assign(module=decision_modules(decisions, responses))
    return train_cohort_models(
        decisions, cfg, params.seed, cfg.cohort_by, global_model=result.model
    )


def model_set_summary(model_set: Any) -> dict[str, Any]:
    """What the saved model set holds (kind, members or cohorts and their training rows)."""
    if model_set.kind == "ensemble":
        return {"kind": "ensemble", "members": len(model_set.members), "seeds": model_set.seeds}
    return {
        "kind": "cohort",
        "cohort_by": model_set.cohort_by,
        "cohort_models": sorted(model_set.models),
        "rows": dict(model_set.sizes),
    }


def run(params: Params) -> TrainMlpResult | Skipped:
    """Train, save and measure the decision model; write its metrics and timings. With no
    decisions in the export window, keep the previous model and return a ``Skipped``."""
    from learnops.data.splits import mlp_holdout
    from learnops.io import jsonable
    from learnops.mlp import save, train
    from learnops.mlp.artifacts import save_set
    from learnops.mlp.baselines import compare_baselines
    from learnops.mlp.features import feature_summary
    from learnops.mlp.importance import global_importance
    from learnops.mlp.rare import compare_rare_action_options
    from learnops.stages import (
        no_rows_reason,
        processed_table,
        skip_training,
        write_metrics,
        write_timings,
    )

    t0 = time.perf_counter()
    _, exported = processed_table(params, "decisions")
    if exported.empty:
        model_dir = params.path(params.paths.models_dir) / "mlp"
        # DVC needs the plots out; the curves of the kept model are gone with this run's
        (params.path(params.paths.reports_dir) / "dvclive" / STAGE / "plots" / "metrics").mkdir(
            parents=True, exist_ok=True
        )
        return skip_training(
            params, STAGE, STAGE, "mlp", no_rows_reason(params, "decisions"), kept_model(model_dir)
        )
    decisions, held_out = mlp_holdout(exported, params)
    live_dir = params.path(params.paths.reports_dir) / "dvclive" / STAGE
    result = train(decisions, params.mlp, seed=params.seed, live_dir=live_dir)
    model_set = train_model_set(params, decisions, result)
    if model_set is None:
        model_dir = save(result, params.path(params.paths.models_dir) / "mlp")
    else:
        model_dir = save_set(model_set, params.path(params.paths.models_dir) / "mlp", result)
    baselines = compare_baselines(result, decisions, n_bins=params.evaluate.ece_bins)
    rare = compare_rare_action_options(
        decisions,
        result,
        params.mlp,
        params.seed,
        n_boot=params.evaluate.bootstrap,
        n_bins=params.evaluate.ece_bins,
    )
    importance = global_importance(
        result.model,
        decisions.iloc[result.split.val_index],
        params.seed,
        n_boot=params.evaluate.bootstrap,
    )
    metrics = metrics_document(result, baselines)
    metrics["rare_actions"] = rare.to_metrics()
    if model_set is not None:
        metrics["model_set"] = model_set_summary(model_set)
    metrics = jsonable(metrics)
    write_metrics(params, STAGE, metrics)
    reliability, ece = reliability_data(result, params.evaluate.ece_bins)
    validation = pd.Series(
        {k: float(result.metrics[k]) for k in VALIDATION_KEYS}, name="validation"
    ).to_frame()
    seconds = time.perf_counter() - t0
    epoch_seconds = result.history.get("seconds", pd.Series(dtype=float))
    write_timings(
        params,
        STAGE,
        {
            "train_seconds": result.metrics["train_seconds"],
            "stage_seconds": seconds,
            "epoch_seconds": [float(s) for s in np.asarray(epoch_seconds, dtype=float)],
        },
    )
    return TrainMlpResult(
        data_summary=action_mix(decisions),
        feature_summary=feature_summary(decisions),
        split_summary=split_summary(exported, held_out, result),
        history=result.history.drop(columns=["seconds"], errors="ignore"),
        best_epoch=int(result.metrics["best_epoch"]),
        validation=validation,
        reliability=reliability,
        ece=ece,
        coverage=confidence_coverage(result, params.mlp.confidence_threshold),
        per_class=result.per_class().set_index("action"),
        baselines=baselines,
        metrics=metrics,
        model_dir=Path(model_dir),
        seconds=seconds,
        train_result=result,
        rare_actions=rare,
        importance=importance,
    )
