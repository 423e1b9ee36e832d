"""The ``learner_models`` stage: models that learn (Elo, PFA, Best-LR) next to static IRT, on
predicting each next answer from the learner's past.

Reads ``data/processed/responses.parquet`` and evaluates every model of
``learner_models.models`` on two splits (:mod:`learnops.learner_models.compare`): ``temporal``
(each learner's latest answers held out) and ``learners`` (whole learners held out). Writes
``reports/metrics/learner_models.json`` (per split and model: AUC, log-loss, accuracy, RMSE, ECE;
the paired log-loss difference with static IRT and its interval; Elo's tuned step), the
wall-clock seconds to ``reports/timings/learner_models.json`` and the model ``irt.ability_model``
names, fitted on the temporal split's training answers, to ``models/learner`` (the ``register``
stage versions it as model type ``learner``). With the simulator's truth
(``<truth_dir>/responses_truth.parquet``), each model's ability estimate is compared with the
learner's true current ability.

No data: when the export window holds no responses, the stage returns a
:class:`~learnops.stages.Skipped` and the metrics file says ``{"skipped": true, "reason": …}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

if TYPE_CHECKING:
    from pathlib import Path

    from learnops.config import Params
    from learnops.learner_models.compare import SplitResult
    from learnops.stages import Skipped

__all__ = ["LearnerModelsResult", "metrics_document", "run"]

STAGE = "learner_models"
#: Metrics per model written to the DVC metrics file.
METRIC_KEYS = ("auc", "log_loss", "accuracy", "rmse", "ece")


@dataclass
class LearnerModelsResult:
    """What the ``learner_models`` stage measured (everything its notebook shows)."""

    data_summary: pd.DataFrame
    splits: dict[str, SplitResult]
    reliability: dict[str, dict[str, pd.DataFrame]]
    """Per split, per model: reliability table of P(correct)."""
    truth: dict[str, pd.DataFrame]
    """Per split: ability estimates against the true current ability (empty without truth)."""
    metrics: dict[str, Any]
    seconds: float
    elo: dict[str, float] = field(default_factory=dict)

    skipped: ClassVar[bool] = False

    def table(self, split: str = "temporal") -> pd.DataFrame:
        """Models × metrics with 95% intervals (text) for one split."""
        return self.splits[split].table()

    def paired_table(self, split: str = "temporal") -> pd.DataFrame:
        """Paired differences model − static IRT (rounded) for one split."""
        from learnops.learner_models.compare import LABELS

        p = self.splits[split].paired.round(4).reset_index()
        p["model"] = p["model"].map(lambda m: LABELS.get(m, m))
        return p.set_index(["model", "metric"])

    @property
    def split_summary(self) -> pd.DataFrame:
        """Training answers, evaluated answers and dropped answers per split."""
        return pd.DataFrame(
            {
                s: {
                    "training answers": r.n_train,
                    "evaluated answers": r.n_test,
                    "dropped (item unseen in training)": r.n_dropped,
                }  # fmt: skip
                for s, r in self.splits.items()
            }
        )


def metrics_document(splits: dict[str, SplitResult], elo: dict[str, float]) -> dict[str, Any]:
    """The DVC metrics: per split, each model's metrics and its paired log-loss difference."""
    doc: dict[str, Any] = {}
    for name, res in splits.items():
        models = list(res.metrics.index.get_level_values(0).unique())
        part: dict[str, Any] = {"n_train": res.n_train, "n_test": res.n_test}
        for m in models:
            part[m] = {k: float(res.metrics.loc[(m, k), "value"]) for k in METRIC_KEYS}
            if (m, "log_loss") in res.paired.index:
                row = res.paired.loc[(m, "log_loss")]
                part[m]["log_loss_diff_vs_irt"] = float(row["diff"])
                part[m]["log_loss_diff_low"] = float(row["low"])
                part[m]["log_loss_diff_high"] = float(row["high"])
        part["best_log_loss"] = min(models, key=lambda m: part[m]["log_loss"])
        doc[name] = part
    doc["elo"] = dict(elo)
    return doc


def save_ability_model(params: Params, temporal: SplitResult, responses: pd.DataFrame) -> Path:
    """Save the model ``irt.ability_model`` names, as fitted on the temporal split's training
    answers, to ``<models_dir>/learner`` (the ``register`` stage versions it, gated on the
    held-out answers of the same split); the directory."""
    from learnops.learner_models.ability import fit_ability_model
    from learnops.learner_models.artifact import save
    from learnops.learner_models.compare import split_temporal

    name = params.irt.ability_model
    model = temporal.models.get(name)
    if model is None:  # not among learner_models.models: fitted on the same training answers
        train, _ = split_temporal(responses, params.learner_models.holdout_frac)
        model = fit_ability_model(name, train, params)
    return save(model, params.path(params.paths.models_dir) / "learner")


def _truth(params: Params) -> pd.DataFrame | None:
    from learnops.io import read_table

    path = params.path(params.paths.truth_dir) / "responses_truth.parquet"
    if not path.is_file():
        return None
    truth = read_table(path)
    return truth if "ability" in truth.columns else None


def run(params: Params) -> LearnerModelsResult | Skipped:
    """Fit and compare the learner models on both splits; write metrics and timings."""
    from learnops.learner_models import compare
    from learnops.stages import (
        Skipped,
        no_rows_reason,
        processed_table,
        write_metrics,
        write_timings,
    )

    t0 = time.perf_counter()
    _, responses = processed_table(params, "responses")
    if responses.empty:
        reason = no_rows_reason(params, "responses")
        metrics = {"skipped": True, "reason": reason}
        write_metrics(params, STAGE, metrics)
        return Skipped(stage=STAGE, reason=reason, metrics=metrics)
    responses = responses.reset_index(drop=True)
    cfg, seed = params.learner_models, params.seed
    train, mask = compare.split_temporal(responses, cfg.holdout_frac)
    temporal = compare.evaluate_split("temporal", responses, train, mask, cfg, params.irt, seed)
    train, mask = compare.split_learners(responses, cfg.test_split, seed)
    learners = compare.evaluate_split(
        "learners", responses, train, mask, cfg, params.irt, seed, history=mask
    )
    splits = {"temporal": temporal, "learners": learners}
    save_ability_model(params, temporal, responses)
    models = list(temporal.metrics.index.get_level_values(0).unique())
    elo = {}
    if not temporal.elo_grid.empty:
        best = temporal.elo_grid.loc[temporal.elo_grid["log_loss"].idxmin()]
        elo = {"alpha": float(best["alpha"]), "beta": float(best["beta"])}
    metrics = metrics_document(splits, elo)
    write_metrics(params, STAGE, metrics)
    truth_table = _truth(params)
    truth = {
        s: (
            compare.truth_comparison(r.rows, truth_table, models)
            if truth_table is not None
            else pd.DataFrame()
        )
        for s, r in splits.items()
    }
    seconds = time.perf_counter() - t0
    write_timings(
        params,
        STAGE,
        {"stage_seconds": seconds, **{f"{s}_seconds": r.seconds for s, r in splits.items()}},
    )
    lcol = "learner_hash" if "learner_hash" in responses.columns else "learner_id"
    summary = pd.Series(
        {
            "responses": len(responses),
            "learners": int(responses[lcol].nunique()),
            "items": int(responses["item_id"].nunique()),
            "modules": int(responses["module"].nunique()) if "module" in responses else 1,
        },
        name="value",
    ).to_frame()
    return LearnerModelsResult(
        data_summary=summary,
        splits=splits,
        reliability={
            s: compare.reliability(r.rows, models, cfg.ece_bins) for s, r in splits.items()
        },
        truth=truth,
        metrics=metrics,
        seconds=seconds,
        elo=elo,
    )
