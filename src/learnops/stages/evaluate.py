"""The ``evaluate`` stage: the trained decision model and IRT model on held-out data.

:func:`run` loads ``models/mlp`` and ``models/irt`` and scores them on the data their training
stages left out (:func:`learnops.data.splits.mlp_holdout` for the decision model: whole learners;
:func:`learnops.data.splits.irt_holdout` for the IRT model: each learner's last responses). It
writes ``reports/metrics/evaluate.json`` (deterministic values only, so ``dvc metrics diff`` shows
real changes), the DVC plot data ``reports/plots/evaluate/{confusion,calibration,threshold}.csv``,
the measured latency in ``reports/timings/evaluate.json``, and records the evaluation in the event
store. ``notebooks/04_evaluate.ipynb`` draws the returned :class:`EvaluateResult`.

No data (issue 22, item 14): the stage goes on instead of failing.

* Without a decision model or held-out decisions to score it on (no decisions in the export
  window, so ``train_mlp`` skipped and kept or never made ``models/mlp``), it evaluates nothing
  and returns a :class:`~learnops.stages.Skipped`; ``evaluate.json`` is
  ``{"skipped": true, "reason": …}``, the plot files hold their header only, and nothing is
  recorded in the event store.
* Without an IRT model or held-out responses (no responses in the window), the decision model is
  evaluated as usual and ``evaluate.json`` says ``"irt": {"skipped": true, "reason": …}``;
  :attr:`EvaluateResult.irt` is None and :attr:`EvaluateResult.irt_skipped` tells why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

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
from learnops.evaluation.ope import cross_fit_rewards, logged_decisions, off_policy_evaluation
from learnops.evaluation.report import deployment_recommendation
from learnops.evaluation.slices import (
    SliceReport,
    ability_bands,
    decision_modules,
    hour_bands,
    returning,
    slice_report,
)

if TYPE_CHECKING:
    from learnops.config import Params, Targets
    from learnops.stages import Skipped

__all__ = [
    "OPE_REWARD",
    "EvaluateResult",
    "IrtScores",
    "MlpDecisions",
    "MlpScores",
    "measure_latency",
    "model_version_label",
    "run",
]

#: The logged outcome the off-policy evaluation estimates the policies' value on.
OPE_REWARD = "next_engagement"
#: Targets checked from deterministic metrics (the verdict written to ``evaluate.json``); the
#: latency target is checked too, but only in the report and ``reports/timings/evaluate.json``.
QUALITY_TARGETS = ("accuracy", "calibration_error", "ml_usage")
_LABELS = list(ACTIONS)
_K = len(ACTIONS)


@dataclass
class MlpScores:
    """The decision model's probabilities on the held-out learners and their quality metrics."""

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
    """Learner-clustered bootstrap estimate and 95% interval per metric."""

    @property
    def ece_values(self) -> dict[tuple[str, str], float]:
        """ECE keyed like ``reliability`` (for the legend of the reliability diagrams)."""
        cal = self.calibration
        return {(w, s): float(cal.loc[w, f"ece_{s}"]) for w, s in self.reliability}


@dataclass
class MlpDecisions:
    """The model's decisions next to the logged ones: agreement, thresholds, outcomes."""

    test: pd.DataFrame
    """Held-out decisions with ``model_action``, ``model_confidence``, ``correct`` and
    ``confidence_bucket`` added."""
    agreement_by_action: pd.DataFrame
    agreement_by_confidence: pd.DataFrame
    agreement_overall: pd.DataFrame
    thresholds: pd.DataFrame
    threshold_choice: ThresholdChoice
    current_threshold: float
    ml_usage_at_current: float
    ml_accuracy_at_current: float | None
    outcomes_by_action: pd.DataFrame
    outcomes_by_decider: pd.DataFrame
    #: The threshold table on the validation learners the threshold is chosen on (None: no
    #: validation rows, the choice falls back to the test table and says so).
    thresholds_validation: pd.DataFrame | None = None
    #: The choice as measured on the validation learners (the test figures are in
    #: ``threshold_choice``).
    validation_choice: ThresholdChoice | None = None

    @property
    def threshold_summary(self) -> pd.DataFrame:
        """ML usage and ML accuracy at the current threshold and at the chosen one."""
        c = self.threshold_choice
        return pd.DataFrame(
            [
                {
                    "threshold": self.current_threshold,
                    "ml_usage": self.ml_usage_at_current,
                    "ml_accuracy": self.ml_accuracy_at_current,
                },
                {"threshold": c.threshold, "ml_usage": c.ml_usage, "ml_accuracy": c.ml_accuracy},
            ],
            index=pd.Index(["current", "chosen"], name="threshold in use"),
        ).astype(float)

    @property
    def outcomes_summary_by_action(self) -> pd.DataFrame:
        """Mean outcome [95% CI] per logged action (rows) and outcome (columns)."""
        return interval_pivot(self.outcomes_by_action, "action")

    @property
    def outcomes_summary_by_decider(self) -> pd.DataFrame:
        """Mean outcome [95% CI] per decider (rows) and outcome (columns)."""
        return interval_pivot(self.outcomes_by_decider, "decided_by")


@dataclass
class IrtScores:
    """The IRT model's P(correct) on each learner's last responses and its metrics."""

    test: pd.DataFrame
    metrics: dict[str, Any]
    by_module: pd.DataFrame
    calibration: pd.DataFrame

    @property
    def metrics_table(self) -> pd.DataFrame:
        """``metrics`` as a one-column table (metric → value on the held-out responses)."""
        return pd.Series(self.metrics, name="held-out", dtype=float).to_frame()


@dataclass
class EvaluateResult:
    """Everything the evaluate stage measured, composed of its parts (``mlp``, ``decisions``,
    ``irt``), with ``metrics`` (the document written to ``reports/metrics/evaluate.json``) and
    ``timings`` (the wall-clock document written to ``reports/timings/evaluate.json``). The
    report's tables derived from them are properties."""

    model_version: str
    temperature: float
    targets: Targets
    """``params.evaluate.targets``, the thresholds the verdict checks."""
    mlp: MlpScores
    decisions: MlpDecisions
    ope: pd.DataFrame
    """One row per (policy, estimator), plus the logged policy's observed mean."""
    irt: IrtScores | None
    """None when the IRT model could not be evaluated (see ``irt_skipped``)."""
    latency_ms: np.ndarray
    latency: dict[str, float]
    recommendation: dict[str, Any]
    """The verdict on every target, latency included (the report's view)."""
    metrics: dict[str, Any]
    timings: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    evaluation_id: int | None = None
    irt_skipped: Skipped | None = None
    """Why the IRT model was not evaluated (no responses in the window, no model), or None."""
    slices: SliceReport | None = None
    """Cohort slices of the held-out decisions (written to ``evaluate_slices.json``)."""
    ope_skipped: Skipped | None = None
    """Why off-policy evaluation was skipped (no propensities logged), or None."""
    model_set: pd.DataFrame | None = None
    """The configured model set against its global model per cohort (:func:`model_set_comparison`);
    None with a single model."""

    skipped: ClassVar[bool] = False

    @property
    def headline(self) -> pd.DataFrame:
        """``mlp.bootstrap`` indexed by metric, with the target each metric is checked against."""
        return headline_table(self.mlp.bootstrap, self.targets)

    @property
    def latency_table(self) -> pd.DataFrame:
        """``latency`` as a one-column table (statistic → milliseconds)."""
        return pd.Series(self.latency, name="ms", dtype=float).to_frame()

    @property
    def checks(self) -> pd.DataFrame:
        """One row per target check of ``recommendation``."""
        return checks_table(self.recommendation)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per headline fact (for the top of the report)."""
        return summary_table(self.model_version, self.metrics, self.irt, self.recommendation)

    @property
    def conclusion(self) -> str:
        """The report's closing paragraph: verdict, intervals, threshold and off-policy findings."""
        return conclusion_text(self.metrics, self.decisions, self.latency, self.recommendation)


# -- models and latency -------------------------------------------------------------------------
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


def latency_summary(latency_ms: np.ndarray) -> dict[str, float]:
    """p50, p95, p99 and mean of the latencies (ms)."""
    out = {f"p{q}": float(np.percentile(latency_ms, q)) for q in (50, 95, 99)}
    out["mean"] = float(np.mean(latency_ms))
    return out


#: The file that marks a saved model in ``models/<type>`` (an empty directory is no model: what
#: a training stage leaves when it had no data and no previous model).
MODEL_MARKERS: dict[str, str] = {"mlp": "metadata.json", "irt": "fit.json"}


def missing_model(params: Params, model_type: str) -> str | None:
    """Why ``models/<model_type>`` holds no model, or None when it holds one."""
    d = params.path(params.paths.models_dir) / model_type
    if not (d / MODEL_MARKERS[model_type]).is_file():
        return f"no trained {model_type} model in {d} (its training stage has had no data yet)"
    return None


def mlp_skip_reason(params: Params) -> str | None:
    """Why the decision model cannot be evaluated (no model, no decisions, no held-out
    decisions), or None."""
    from learnops.data.splits import mlp_holdout
    from learnops.stages import no_rows_reason, processed_table

    _, decisions = processed_table(params, "decisions")
    if decisions.empty:
        return no_rows_reason(params, "decisions")
    if mlp_holdout(decisions, params)[1].empty:
        return f"no held-out decisions in the export window ({len(decisions)} decisions)"
    return missing_model(params, "mlp")


def irt_skip_reason(params: Params) -> str | None:
    """Why the IRT model cannot be evaluated (no model, no responses, no held-out responses),
    or None."""
    from learnops.data.splits import irt_holdout
    from learnops.stages import no_rows_reason, processed_table

    _, responses = processed_table(params, "responses")
    if responses.empty:
        return no_rows_reason(params, "responses")
    if irt_holdout(responses, params)[1].empty:
        return f"no held-out responses in the export window ({len(responses)} responses)"
    return missing_model(params, "irt")


# -- the decision model -------------------------------------------------------------------------
def mlp_test_set(params: Params, decisions: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out decisions of the exported ``decisions`` and their logged action indices
    (ACTIONS order)."""
    from learnops.data.splits import mlp_holdout

    test = mlp_holdout(decisions, params)[1]
    if test.empty:
        raise LearnopsError("the MLP held-out set is empty")
    unknown = sorted(set(test["action"].astype(str)) - set(ACTIONS))
    if unknown:
        raise LearnopsError(f"unknown logged action(s) in the test set: {unknown}")
    y = test["action"].astype(str).map({a: i for i, a in enumerate(ACTIONS)}).to_numpy(int)
    return test, y


def _bootstrap_table(
    test: pd.DataFrame, proba: np.ndarray, y: np.ndarray, params: Params
) -> pd.DataFrame:
    """Learner-clustered bootstrap CIs of accuracy, macro-F1, ECE and log-loss (same draws)."""
    from sklearn.metrics import f1_score, log_loss

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
    """ECE/MCE (equal-width and equal-mass bins), log-loss and mean confidence before and after
    temperature scaling, and the reliability table of each (when, binning)."""
    from sklearn.metrics import log_loss

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


def score_mlp(model: Any, test: pd.DataFrame, y: np.ndarray, params: Params) -> MlpScores:
    """Classification metrics, confusion matrices, calibration before/after temperature scaling
    and learner-clustered bootstrap CIs of the model on the held-out decisions."""
    from learnops.mlp.calibration import apply_temperature
    from learnops.mlp.features import feature_matrix

    if getattr(model, "kind", None) is not None:  # a model set: already calibrated
        proba = proba_t1 = _set_proba(model, test)
    else:
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
    calibration, reliability = _calibration(y, proba_t1, proba, params.evaluate.ece_bins)
    return MlpScores(
        y=y,
        proba=proba,
        proba_uncalibrated=proba_t1,
        report=report,
        per_class=per_class,
        confusion=confusion,
        confusion_normalized=confusion_norm,
        calibration=calibration,
        reliability=reliability,
        bootstrap=_bootstrap_table(test, proba, y, params),
    )


def validation_confidence(
    model: Any, params: Params, decisions: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray] | None:
    """(confidence, correct) of the model on the exported ``decisions`` of the training stage's
    validation learners (early
    stopping and calibration learners: the model was never fitted on them, and they are not the
    held-out test learners); None when there are none. The threshold is chosen on these."""
    from learnops.data.splits import mlp_holdout
    from learnops.mlp.calibration import apply_temperature
    from learnops.mlp.features import feature_matrix
    from learnops.mlp.training import split_by_learner

    train = mlp_holdout(decisions, params)[0]
    if train["learner_hash"].nunique() < 2:
        return None
    split = split_by_learner(
        train["learner_hash"],
        len(train),
        params.mlp.val_split,
        params.seed,
        cal_frac=params.mlp.calibration_split,
    )
    val = train.iloc[np.sort(np.r_[split.val_index, split.cal_index])]
    known = val["action"].astype(str).isin(ACTIONS).to_numpy()
    val = val[known]
    if val.empty:
        return None
    y = val["action"].astype(str).map({a: i for i, a in enumerate(ACTIONS)}).to_numpy(int)
    logits, _ = model.logits_and_delta(feature_matrix(val))
    proba = apply_temperature(logits, model.temperature)
    return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(int)


def _choose_threshold(
    test: pd.DataFrame, validation: tuple[np.ndarray, np.ndarray] | None, params: Params
) -> tuple[ThresholdChoice, ThresholdChoice | None, pd.DataFrame | None]:
    """The threshold chosen on the validation learners and scored on the test learners:
    (choice with the test figures, choice with the validation figures, validation table)."""
    ev = params.evaluate
    if validation is None:
        table = threshold_analysis(test["model_confidence"], test["correct"])
        c = pick_threshold(table, ev.targets.ml_usage, ev.targets.accuracy)
        note = " (no validation learners: chosen on the test learners, an optimistic figure)"
        return ThresholdChoice(c.threshold, c.ml_usage, c.ml_accuracy, c.reason + note), None, None
    val_table = threshold_analysis(*validation)
    on_val = pick_threshold(val_table, ev.targets.ml_usage, ev.targets.accuracy)
    if on_val.threshold is None:
        return on_val, on_val, val_table
    use = test["model_confidence"] >= on_val.threshold
    usage = float(use.mean())
    acc = float(test.loc[use, "correct"].mean()) if use.any() else None
    reason = (
        f"chosen on the validation learners (usage {on_val.ml_usage:.3f}, accuracy "
        f"{on_val.ml_accuracy:.3f}); on the held-out test learners: usage {usage:.3f}, accuracy "
        + ("n/a" if acc is None else f"{acc:.3f}")
    )
    return ThresholdChoice(on_val.threshold, usage, acc, reason), on_val, val_table


def compare_decisions(
    test: pd.DataFrame,
    scores: MlpScores,
    params: Params,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> MlpDecisions:
    """The model's decisions against the logged ones: agreement per decider, confidence
    thresholds (usage vs accuracy; the threshold chosen on ``validation`` — the validation
    learners' (confidence, correct) — and scored on the test learners) and the outcomes that
    followed."""
    pred = scores.proba.argmax(axis=1)
    test = test.copy()
    test["model_action"] = np.asarray(ACTIONS, dtype=object)[pred]
    test["model_confidence"] = scores.proba.max(axis=1)
    test["correct"] = (pred == scores.y).astype(int)
    test = add_confidence_bucket(test, "model_confidence", CONFIDENCE_EDGES)

    thresholds = threshold_analysis(test["model_confidence"], test["correct"])
    choice, on_val, val_table = _choose_threshold(test, validation, params)
    current = float(params.mlp.confidence_threshold)
    at_current = test["model_confidence"] >= current
    outcome_cols = [c for c in OUTCOME_COLUMNS if c in test.columns]
    return MlpDecisions(
        test=test,
        agreement_by_action=agreement_table(test, by=["decided_by", "action"]),
        agreement_by_confidence=agreement_table(test, by=["decided_by", "confidence_bucket"]),
        agreement_overall=agreement_table(test, by=["decided_by"]),
        thresholds=thresholds,
        threshold_choice=choice,
        current_threshold=current,
        ml_usage_at_current=float(at_current.mean()),
        ml_accuracy_at_current=(
            float(test.loc[at_current, "correct"].mean()) if at_current.any() else None
        ),
        outcomes_by_action=outcomes_by(test, by="action", metrics=outcome_cols),
        outcomes_by_decider=outcomes_by(test, by="decided_by", metrics=outcome_cols),
        thresholds_validation=val_table,
        validation_choice=on_val,
    )


# -- off-policy evaluation ----------------------------------------------------------------------
def ope_rows(test: pd.DataFrame) -> tuple[np.ndarray, str | None]:
    """Which held-out decisions off-policy evaluation can use (a propensity and a reward are
    logged), and the reason it is skipped when none can (e.g. a decision log imported from a
    system that did not record the probability of the action it took), else None."""
    prop = (
        pd.to_numeric(test["propensity"], errors="coerce")
        if "propensity" in test
        else pd.Series(np.nan, index=test.index)
    )
    reward = (
        pd.to_numeric(test[OPE_REWARD], errors="coerce")
        if OPE_REWARD in test
        else pd.Series(np.nan, index=test.index)
    )
    has_prop = np.isfinite(prop.to_numpy(dtype=float))
    rows = has_prop & np.isfinite(reward.to_numpy(dtype=float))
    if not has_prop.any():
        return rows, (
            f"none of the {len(test)} held-out decisions carries a propensity (the logging "
            "policy's probability of the action it took), so the logs cannot tell what another "
            "policy would have earned: off-policy evaluation skipped"
        )
    if not rows.any():
        return rows, (
            f"no held-out decision with a propensity has its {OPE_REWARD} outcome yet: "
            "off-policy evaluation skipped"
        )
    return rows, None


def off_policy(
    test: pd.DataFrame, y: np.ndarray, proba: np.ndarray, params: Params
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """IPS/SNIPS/DR of the model's argmax and stochastic policies on :data:`OPE_REWARD`, and the
    logged policy's observed mean (learner-bootstrap interval): a table and its metrics.

    The decisions are validated by :func:`learnops.evaluation.ope.logged_decisions` (rows whose
    reward is not posted yet are left out); the reward model is cross-fitted with folds grouped
    by learner and the standard errors are learner-clustered."""
    logged = logged_decisions(test, OPE_REWARD)
    r, p_log, a, groups = logged.r, logged.p_log, logged.a, logged.groups
    if not np.array_equal(a, np.asarray(y)[logged.rows]):
        raise LearnopsError("the logged actions and the labels of the held-out set differ")
    q_hat = cross_fit_rewards(logged.X, a, r, _K, n_folds=5, seed=params.seed, groups=groups)
    pr = proba[logged.rows]
    policies = {
        "deterministic": np.eye(_K)[pr.argmax(axis=1)],
        "stochastic": pr / pr.sum(axis=1, keepdims=True),
    }
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {
        "reward": OPE_REWARD,
        "reward_model": "ridge, 5-fold cross-fitted by learner",
    }
    for name, pi in policies.items():
        out[name] = {}
        for est, o in off_policy_evaluation(r, p_log, pi, a, q_hat=q_hat, groups=groups).items():
            d = o.to_dict()
            rows.append({"policy": name, **d})
            keep = ("value", "se", "ci_low", "ci_high", "ess", "max_weight")
            out[name][est] = {k: d[k] for k in keep}
    if params.evaluate.bootstrap >= 1:
        mean, lo, hi = bootstrap_mean_ci(
            r, clusters=groups, n_boot=params.evaluate.bootstrap, seed=params.seed
        )
    else:  # no bootstrap, no interval (a single replicate would give a zero-width one)
        mean, lo, hi = float(np.mean(r)), float("nan"), float("nan")
    rows.append(
        {
            "policy": "logged",
            "estimator": "observed mean",
            "value": mean,
            "se": float("nan"),
            "ci_low": lo,
            "ci_high": hi,
            "n": len(r),
            "n_learners": logged.n_learners,
            "ess": float(len(r)),
            "max_weight": 1.0,
        }
    )
    out["logged"] = {"value": mean, "ci_low": lo, "ci_high": hi, "n": len(r)}
    out["deltas"] = {
        f"{pol}_{est}_minus_logged": out[pol][est]["value"] - mean
        for pol in policies
        for est in out[pol]
    }
    return pd.DataFrame(rows), out


# -- the IRT model ------------------------------------------------------------------------------
def score_irt(fit: Any, params: Params) -> IrtScores:
    """P(correct) of each learner's held-out last responses: binary metrics, per module, and the
    calibration table."""
    from learnops.data.splits import irt_holdout
    from learnops.io import read_table

    n_bins = params.evaluate.ece_bins
    responses = read_table(params.path(params.paths.processed_dir) / "responses.parquet")
    test = irt_holdout(responses, params)[1].copy()
    if test.empty:
        raise LearnopsError("the IRT held-out set is empty")
    test["p_correct"] = fit.predict(test)
    yc = test["correct"].astype(float).to_numpy()
    by_module = (
        by_group(yc, test["p_correct"], test["module"], n_bins=n_bins)
        if "module" in test.columns
        else pd.DataFrame()
    )
    return IrtScores(
        test=test,
        metrics=binary_metrics(yc, test["p_correct"], n_bins=n_bins),
        by_module=by_module,
        calibration=binary_calibration_table(yc, test["p_correct"], n_bins=n_bins),
    )


# -- cohort slices ------------------------------------------------------------------------------
#: Outcome columns summarized per slice (session time is in the outcome tables by action).
SLICE_OUTCOMES = ("next_accuracy", "next_engagement", "session_completed")


def slice_dimensions(test: pd.DataFrame, responses: pd.DataFrame | None) -> dict[str, pd.Series]:
    """The cohort dimensions of the held-out decisions: ability band (terciles of θ), new vs
    returning learner, module, hour-of-day band. Each partitions the rows."""
    return {
        "ability_band": ability_bands(test["ability"]),
        "learner": returning(test["sessions_completed"]),
        "module": decision_modules(test, responses),
        "hour": hour_bands(test["hour_of_day"]),
    }


def cohort_slices(
    test: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    responses: pd.DataFrame | None,
    params: Params,
) -> SliceReport:
    """Accuracy, macro-F1, ECE, ML usage and outcomes per cohort slice, learner-bootstrap CIs."""
    outcomes = {
        c: pd.to_numeric(test[c], errors="coerce").astype(float).to_numpy()
        for c in SLICE_OUTCOMES
        if c in test.columns
    }
    return slice_report(
        y,
        proba,
        test["learner_hash"].to_numpy(),
        slice_dimensions(test, responses),
        threshold=float(params.mlp.confidence_threshold),
        outcomes=outcomes,
        n_boot=params.evaluate.bootstrap,
        seed=params.seed,
        n_bins=params.evaluate.ece_bins,
    )


# -- model sets (mlp.cohort_by / mlp.ensemble) against the global model ------------------------
#: Metrics of the model-set table, in display order.
MODEL_SET_METRICS = ("accuracy", "macro_f1", "ece", "recall_change_activity")


def _set_proba(model: Any, test: pd.DataFrame) -> np.ndarray:
    """Calibrated probabilities of a model set on the held-out rows (by ``predict_batch``, so a
    ``module`` column routes module cohorts)."""
    from learnops.mlp import predict_batch
    from learnops.mlp.inference import PROBA_COLUMNS

    return predict_batch(model, test)[list(PROBA_COLUMNS)].to_numpy(dtype=float)


def model_set_comparison(
    model: Any, test: pd.DataFrame, y: np.ndarray, params: Params
) -> pd.DataFrame | None:
    """Per cohort of the held-out decisions (the set's cohorts for ``cohort_by``; ability bands
    for an ensemble) and overall: accuracy, macro-F1, ECE and change_activity recall of the model
    set and of its global model (ensemble: member 0, the single model ``seed`` trains), with the
    set − global difference and its learner-bootstrap CI. None for a single model."""
    from learnops.evaluation.compare import compare_models
    from learnops.mlp import predict_batch
    from learnops.mlp.inference import PROBA_COLUMNS

    kind = getattr(model, "kind", None)
    if kind is None:
        return None
    if kind == "cohort":
        glob = model.global_model
        labels = pd.Series(model.labels(test), index=test.index).fillna("(no module)").astype(str)
        dim = model.cohort_by
    else:
        glob = model.members[0]
        labels = ability_bands(test["ability"]).astype(str)
        dim = "ability_band"
    p_set = _set_proba(model, test)
    p_glob = predict_batch(glob, test)[list(PROBA_COLUMNS)].to_numpy(dtype=float)
    learners = test["learner_hash"].astype(str).to_numpy()
    groups = [("all", np.ones(len(test), dtype=bool))]
    groups += [(c, (labels == c).to_numpy()) for c in sorted(labels.unique())]
    rows = []
    for name, rows_in in groups:
        table = compare_models(
            y[rows_in],
            {"global": p_glob[rows_in], "set": p_set[rows_in]},
            learners[rows_in],
            reference="global",
            labels=_LABELS,
            threshold=float(params.mlp.confidence_threshold),
            n_boot=params.evaluate.bootstrap,
            seed=params.seed,
            n_bins=params.evaluate.ece_bins,
        ).set_index(["model", "metric"])
        for metric in MODEL_SET_METRICS:
            g, m = table.loc[("global", metric)], table.loc[("set", metric)]
            rows.append(
                {
                    dim: name,
                    "decisions": int(rows_in.sum()),
                    "learners": int(pd.unique(learners[rows_in]).size),
                    "metric": metric,
                    "global": float(g["estimate"]),
                    kind: float(m["estimate"]),
                    "diff": float(m["diff"]),
                    "diff_ci_low": float(m["diff_ci_low"]),
                    "diff_ci_high": float(m["diff_ci_high"]),
                }
            )
    return pd.DataFrame(rows)


def model_set_note(params: Params) -> str:
    """One line: which model set is configured (or that none is)."""
    cfg = params.mlp
    if cfg.cohort_by is None and cfg.ensemble <= 1:
        return (
            "No cohort or ensemble model is configured (mlp.cohort_by: null, mlp.ensemble: 1): "
            "the global model is the deployed model."
        )
    if cfg.ensemble > 1:
        n, seed = cfg.ensemble, params.seed
        return f"Ensemble of {n} seeds against its member trained with seed {seed}."
    return (
        f"One model per {cfg.cohort_by} (cohorts under 500 training rows use the global model) "
        "against the global model. /decide requests carry no module: a module set serves them "
        "with the global model; here held-out decisions are routed by their module."
        if cfg.cohort_by == "module"
        else f"One model per {cfg.cohort_by} (cohorts under 500 training rows use the global "
        "model) against the global model."
    )


# -- verdict, metrics, tables -------------------------------------------------------------------
def recommend(
    scores: MlpScores, dec: MlpDecisions, latency: Mapping[str, float] | None, targets: Any
) -> dict[str, Any]:
    """The deploy verdict against ``targets``; with ``latency`` None only the deterministic
    :data:`QUALITY_TARGETS` are checked (the verdict written to ``evaluate.json``)."""
    tgt = targets.model_dump() if hasattr(targets, "model_dump") else dict(targets)
    measured: dict[str, Any] = {
        "accuracy": scores.report["accuracy"],
        "calibration_error": float(scores.calibration.loc["after", "ece_uniform"]),
        "ml_usage": dec.ml_usage_at_current,
    }
    if latency is None:
        tgt = {k: v for k, v in tgt.items() if k in QUALITY_TARGETS}
    else:
        measured["latency_ms"] = latency["p95"]
    return deployment_recommendation(measured, tgt)


def build_metrics(
    version: str,
    model: Any,
    fit: Any,
    scores: MlpScores,
    dec: MlpDecisions,
    ope: Mapping[str, Any],
    irt_scores: IrtScores | None,
    params: Params,
    irt_skipped: str | None = None,
) -> dict[str, Any]:
    """The ``evaluate.json`` document: deterministic given the inputs (no wall-clock numbers).
    Without ``irt_scores`` its ``irt`` entry is ``{"skipped": true, "reason": irt_skipped}``."""
    from learnops.io import METRIC_DIGITS, jsonable

    report, cal, choice = scores.report, scores.calibration, dec.threshold_choice
    b = scores.bootstrap.set_index("metric")
    rec = recommend(scores, dec, None, params.evaluate.targets)
    metrics = {
        "model_version": version,
        "temperature": float(model.temperature),
        "n_test": int(report["n"]),
        "n_test_learners": int(dec.test["learner_hash"].nunique()),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "weighted_f1": report["weighted"]["f1"],
        "log_loss": report["log_loss"],
        "brier": report["brier"],
        "ece": float(cal.loc["after", "ece_uniform"]),
        "mce": float(cal.loc["after", "mce_uniform"]),
        "ece_quantile": float(cal.loc["after", "ece_quantile"]),
        "mce_quantile": float(cal.loc["after", "mce_quantile"]),
        "ci": {m: dict(b.loc[m, ["estimate", "ci_low", "ci_high"]]) for m in b.index},
        "bootstrap": {
            "n_boot": params.evaluate.bootstrap,
            "seed": params.seed,
            "cluster": "learner_hash",
        },
        "calibration": {when: cal.loc[when].to_dict() for when in ("before", "after")},
        "per_class": {
            r["action"]: {k: r[k] for k in ("precision", "recall", "f1", "support")}
            for r in scores.per_class.to_dict("records")
        },
        "ml_usage": dec.ml_usage_at_current,
        "threshold": {
            "current": dec.current_threshold,
            "ml_usage_at_current": dec.ml_usage_at_current,
            "ml_accuracy_at_current": dec.ml_accuracy_at_current,
            "chosen": choice.threshold,
            "chosen_ml_usage": choice.ml_usage,
            "chosen_ml_accuracy": choice.ml_accuracy,
            "chosen_on": "validation" if dec.validation_choice is not None else "test",
            "validation_ml_usage": getattr(dec.validation_choice, "ml_usage", None),
            "validation_ml_accuracy": getattr(dec.validation_choice, "ml_accuracy", None),
            "reason": choice.reason,
        },
        "agreement": {
            r["decided_by"]: {"n": r["n"], "agreement": r["agreement"]}
            for r in dec.agreement_overall.to_dict("records")
        },
        "ope": dict(ope),
        "irt": (
            {"model": fit.model, **irt_scores.metrics}
            if irt_scores is not None
            else {"skipped": True, "reason": irt_skipped or "not evaluated"}
        ),
        "recommendation": {
            "deploy": rec["deploy"],
            "verdict": rec["verdict"],
            "reasons": rec["reasons"],
            "checked": [c["name"] for c in rec["checks"]],
        },
    }
    return jsonable(metrics, digits=METRIC_DIGITS)  # as write_metrics writes them


def headline_table(bootstrap: pd.DataFrame, targets: Any) -> pd.DataFrame:
    """The bootstrap table indexed by metric with a ``target`` column (blank if none)."""
    out = bootstrap.set_index("metric")
    target = {"accuracy": f"≥ {targets.accuracy}", "ece": f"≤ {targets.calibration_error}"}
    out["target"] = [target.get(m, "") for m in out.index]
    return out


def interval_pivot(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """An ``outcomes_by`` table as text cells ``mean [ci_low, ci_high]``: one row per ``by``
    group, one column per outcome (large values, e.g. milliseconds, without decimals)."""

    def cell(r: pd.Series) -> str:
        big = abs(float(r["mean"])) >= 100 if pd.notna(r["mean"]) else False
        f = (lambda v: f"{v:,.0f}") if big else (lambda v: _fmt(v))
        return f"{f(r['mean'])} [{f(r['ci_low'])}, {f(r['ci_high'])}]"

    cells = table.assign(cell=table.apply(cell, axis=1))
    out = cells.pivot(index=by, columns="metric", values="cell")
    out.columns.name = None
    return out[list(pd.unique(table["metric"]))]


def checks_table(rec: Mapping[str, Any]) -> pd.DataFrame:
    """One row per target check of a recommendation, indexed by the checked metric."""
    cols = ["name", "value", "target", "comparison", "passed"]
    table = pd.DataFrame(list(rec["checks"]))
    return (table if not table.empty else pd.DataFrame(columns=cols)).set_index("name")


def _fmt(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or ``n/a`` when it is missing or not a number."""
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"


def summary_table(
    version: str, metrics: Mapping[str, Any], irt_scores: IrtScores | None, rec: Mapping[str, Any]
) -> pd.DataFrame:
    """One row per headline fact of the evaluation."""
    facts = {
        "model version": version,
        "temperature T": f"{metrics['temperature']:.3f}",
        "held-out decisions (learners)": f"{metrics['n_test']:,} ({metrics['n_test_learners']:,})",
        "held-out IRT responses": (
            f"{len(irt_scores.test):,}" if irt_scores is not None else "none (IRT not evaluated)"
        ),
        "accuracy": f"{metrics['accuracy']:.3f}",
        "ECE after scaling": f"{metrics['ece']:.3f}",
        f"ML usage at threshold {metrics['threshold']['current']:.2f}": _fmt(metrics["ml_usage"]),
        "IRT AUC": _fmt(irt_scores.metrics.get("auc") if irt_scores is not None else None),
        "verdict": rec["verdict"].split(":")[0],
    }
    return pd.DataFrame({"value": list(facts.values())}, index=pd.Index(facts, name="fact"))


def _ci_text(low: Any, high: Any) -> str:
    """``95% CI low–high``, or a note that there is none (``evaluate.bootstrap: 0``)."""
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        return "no CI: bootstrap off"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no CI: bootstrap off"
    return f"95% CI {lo:.3f}–{hi:.3f}"


def conclusion_text(
    metrics: Mapping[str, Any], dec: MlpDecisions, latency: Mapping[str, float], rec: Mapping
) -> str:
    """The closing paragraph: verdict, accuracy interval, calibration, threshold, off-policy."""
    acc = metrics["ci"]["accuracy"]
    choice, current = dec.threshold_choice, dec.current_threshold
    lines = [
        rec["verdict"],
        f"accuracy {acc['estimate']:.3f} ({_ci_text(acc['ci_low'], acc['ci_high'])}); "
        f"ECE {metrics['ece']:.3f}; ML usage at threshold {current:.2f}: "
        f"{metrics['ml_usage']:.3f}; p95 latency {latency['p95']:.3f} ms",
    ]
    if choice.threshold is None:
        lines.append("Threshold: " + choice.reason)
    elif abs(choice.threshold - current) > 1e-9:
        lines.append(
            f"Threshold: the current {current:.2f} meets the usage target with room to spare; "
            f"the most accurate threshold that still meets it is {choice.reason} "
            "(a trade-off: fewer model decisions, more fallback calls)."
        )
    if metrics["ope"].get("skipped"):
        lines.append(f"Off-policy evaluation: skipped ({metrics['ope']['reason']}).")
    else:
        dr, logged = metrics["ope"]["deterministic"]["dr"], metrics["ope"]["logged"]["value"]
        lines.append(
            f"Off-policy (DR) {OPE_REWARD} of the model's policy: {dr['value']:.4f} "
            f"[{dr['ci_low']:.4f}, {dr['ci_high']:.4f}] vs logged {logged:.4f}"
        )
    return "\n".join(lines)


# -- outputs ------------------------------------------------------------------------------------
def write_outputs(params: Params, res: EvaluateResult) -> dict[str, Path]:
    """Write the DVC metrics, the timings and the DVC plot data; return their paths."""
    from learnops.io import jsonable
    from learnops.stages import write_metrics, write_plot_data, write_timings

    test, thresholds = res.decisions.test, res.decisions.thresholds
    cal = res.mlp.reliability[("after", "uniform")]
    thr = thresholds.loc[
        thresholds["ml_accuracy"].notna(), ["threshold", "ml_usage", "ml_accuracy"]
    ]
    confusion = pd.DataFrame(
        {"actual": test["action"].astype(str), "predicted": test["model_action"]}
    )
    slices = res.slices.to_metrics() if res.slices is not None else {"skipped": True}
    return {
        "metrics": write_metrics(params, "evaluate", res.metrics),
        "slices": write_metrics(params, "evaluate_slices", jsonable(slices)),
        "timings": write_timings(params, "evaluate", res.timings),
        "confusion": write_plot_data(params, "evaluate", "confusion", confusion),
        "calibration": write_plot_data(
            params,
            "evaluate",
            "calibration",
            cal.loc[cal["count"] > 0, ["bin", "mean_confidence", "accuracy", "count"]],
        ),
        "threshold": write_plot_data(params, "evaluate", "threshold", thr.round(6)),
    }


def record_evaluation(params: Params, res: EvaluateResult) -> int:
    """Store the evaluation (metrics and timings) in the event store; return its id."""
    from learnops.data.store import EventStore

    store = EventStore(params.db_url)
    try:
        return store.record_evaluation(
            "mlp",
            res.model_version,
            {**res.metrics, "timings": res.timings},
            accuracy=res.metrics["accuracy"],
        )
    finally:
        store.dispose()


# -- the stage ----------------------------------------------------------------------------------
#: Columns of the DVC plot files (written with these headers only when the stage is skipped).
PLOT_COLUMNS: dict[str, tuple[str, ...]] = {
    "confusion": ("actual", "predicted"),
    "calibration": ("bin", "mean_confidence", "accuracy", "count"),
    "threshold": ("threshold", "ml_usage", "ml_accuracy"),
}


def skip(params: Params, reason: str, *, write: bool = True) -> Skipped:
    """The stage without a decision model to evaluate: ``evaluate.json`` says why, the DVC plot
    files hold their header only (DVC needs them), nothing is recorded in the event store."""
    from learnops.stages import Skipped, write_metrics, write_plot_data

    metrics: dict[str, Any] = {"skipped": True, "reason": reason}
    if write:
        write_metrics(params, "evaluate", metrics)
        write_metrics(params, "evaluate_slices", {"skipped": True, "reason": reason})
        for name, cols in PLOT_COLUMNS.items():
            write_plot_data(params, "evaluate", name, pd.DataFrame(columns=list(cols)))
    return Skipped(
        stage="evaluate", reason=reason, kept="no deploy recommendation", metrics=metrics
    )


def run(
    params: Params, *, write: bool = True, record: bool = True, latency_calls: int = 500
) -> EvaluateResult | Skipped:
    """Evaluate ``models/mlp`` and ``models/irt`` on the pipeline's held-out data.

    The MLP is scored on the held-out learners (metrics, calibration before/after temperature
    scaling, learner-clustered bootstrap CIs, agreement with the logged ML and LLM decisions,
    confidence thresholds, outcomes, off-policy value of its policy on ``next_engagement``,
    single-decision latency); the IRT model on each learner's last responses. A deploy / don't
    deploy verdict checks ``params.evaluate.targets``. With ``write`` the metrics, timings and
    DVC plot data are written atomically; with ``record`` the evaluation is stored in the event
    store.

    With no decision model or no held-out decisions (an export window without decisions) it
    returns :func:`skip`; with no IRT model or no held-out responses it evaluates the decision
    model alone (``irt`` None, ``irt_skipped`` says why).
    """
    from learnops import irt
    from learnops.io import read_table
    from learnops.mlp import load as load_mlp
    from learnops.stages import Skipped

    reason = mlp_skip_reason(params)
    if reason is not None:
        return skip(params, reason, write=write)
    models_dir = params.path(params.paths.models_dir)
    model = load_mlp(models_dir / "mlp")
    version = model_version_label(model)
    decisions = read_table(params.path(params.paths.processed_dir) / "decisions.parquet")
    test, y = mlp_test_set(params, decisions)
    responses_path = params.path(params.paths.processed_dir) / "responses.parquet"
    responses = read_table(responses_path) if responses_path.is_file() else None
    if getattr(model, "cohort_by", None) == "module":
        test = test.assign(module=decision_modules(test, responses))
    scores = score_mlp(model, test, y, params)
    dec = compare_decisions(test, scores, params, validation_confidence(model, params, decisions))
    ope_mask, ope_reason = ope_rows(dec.test)
    ope_skipped = None
    if ope_reason is None:
        keep = np.flatnonzero(ope_mask)
        sub = dec.test.iloc[keep].reset_index(drop=True)
        ope_table, ope = off_policy(sub, np.asarray(y)[keep], scores.proba[keep], params)
        if len(keep) < len(dec.test):
            ope["rows_without_propensity_or_reward"] = int(len(dec.test) - len(keep))
    else:
        ope_table, ope = pd.DataFrame(), {"skipped": True, "reason": ope_reason}
        ope_skipped = Skipped(
            stage="off-policy evaluation",
            reason=ope_reason,
            kept="the model is measured on the held-out decisions as usual",
            headline="No propensities",
        )
    slices = cohort_slices(dec.test, y, scores.proba, responses, params)
    irt_reason = irt_skip_reason(params)
    fit, irt_scores, irt_skipped = None, None, None
    if irt_reason is None:
        fit = irt.load(models_dir / "irt")
        irt_scores = score_irt(fit, params)
    else:
        irt_skipped = Skipped(
            stage="the IRT evaluation", reason=irt_reason, kept="the IRT model is not measured"
        )
    metrics = build_metrics(
        version, model, fit, scores, dec, ope, irt_scores, params, irt_skipped=irt_reason
    )

    rows = dec.test[list(FEATURES)].head(500).to_dict("records")
    latencies = measure_latency(model, rows, n_calls=latency_calls)
    latency = latency_summary(latencies)
    rec = recommend(scores, dec, latency, params.evaluate.targets)
    timings = {"latency_ms": latency, "latency_calls": latency_calls, "recommendation": rec}

    result = EvaluateResult(
        model_version=version,
        temperature=float(model.temperature),
        targets=params.evaluate.targets,
        mlp=scores,
        decisions=dec,
        ope=ope_table,
        irt=irt_scores,
        latency_ms=latencies,
        latency=latency,
        recommendation=rec,
        metrics=metrics,
        timings=timings,
        irt_skipped=irt_skipped,
        slices=slices,
        ope_skipped=ope_skipped,
        model_set=model_set_comparison(model, test, y, params),
    )
    if write:
        result.paths = write_outputs(params, result)
    if record:
        result.evaluation_id = record_evaluation(params, result)
    return result
