"""Rare actions: does class weighting or logit adjustment serve them better than the current loss?

The trained model (the current ``mlp`` params) is compared, on its own validation learners,
with three alternatives, each temperature-scaled on the same calibration learners as the model:

* ``class_weights``: the same network retrained with the other ``mlp.class_weights`` setting
  (balanced class-weighted cross-entropy when the current loss is unweighted);
* ``logit_adjust_0.5`` and ``logit_adjust_1``: the current model's logits minus τ · log(training
  action share) (post-hoc logit adjustment, Menon et al. 2021, τ = 0.5 and 1; the balanced-loss
  decision rule without retraining; ``mlp.logit_adjustment`` adopts one).

Metrics: macro-F1, per-action recall, accuracy and ECE after temperature scaling, with paired
learner-bootstrap intervals of each alternative's difference from the current model
(:func:`learnops.evaluation.compare.compare_models`). An alternative is recommended only when its
macro-F1 gain has an interval above 0 and its ECE stays ≤ :data:`MAX_ECE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS
from learnops.evaluation.compare import compare_models
from learnops.mlp.calibration import apply_temperature, fit_temperature
from learnops.mlp.features import feature_matrix

__all__ = ["MAX_ECE", "RARE_ACTION", "RareActions", "compare_rare_action_options"]

#: The calibration an alternative must keep (ECE after temperature scaling).
MAX_ECE = 0.02
#: The action the acceptance criterion is about (the rarest in the simulator's logs).
RARE_ACTION = "change_activity"
TAUS = (0.5, 1.0)


@dataclass
class RareActions:
    """The comparison table and the verdict."""

    table: pd.DataFrame
    """compare_models' table (model, metric, estimate, CI, diff vs current, diff CI)."""
    temperatures: dict[str, float]
    recommended: str | None
    verdict: str

    def summary(self) -> pd.DataFrame:
        """One row per model: macro-F1, accuracy, ECE and per-action recall, ``est [lo, hi]``,
        and the macro-F1 difference from the current model with its interval."""
        t = self.table
        cell = t.apply(lambda r: f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]", axis=1)
        wide = t.assign(cell=cell).pivot(index="model", columns="metric", values="cell")
        order = ["macro_f1", "accuracy", "ece", *[f"recall_{a}" for a in ACTIONS]]
        wide = wide[order].reindex(pd.unique(t["model"]))
        f1 = t[t["metric"] == "macro_f1"].set_index("model")
        wide.insert(
            1,
            "macro_f1 − current",
            [
                f"{f1.loc[m, 'diff']:+.3f} [{f1.loc[m, 'diff_ci_low']:+.3f}, "
                f"{f1.loc[m, 'diff_ci_high']:+.3f}]"
                for m in wide.index
            ],
        )
        wide.columns.name = None
        return wide

    def to_metrics(self) -> dict[str, Any]:
        """DVC metrics: per model, macro-F1, ECE and rare-action recall with intervals."""
        keep = ("macro_f1", "ece", "accuracy", f"recall_{RARE_ACTION}", "recall_take_break")
        doc: dict[str, Any] = {"recommended": self.recommended}
        for r in self.table[self.table["metric"].isin(keep)].itertuples():
            doc.setdefault(r.model, {})[r.metric] = {
                "estimate": r.estimate,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "diff": r.diff,
                "diff_ci_low": r.diff_ci_low,
                "diff_ci_high": r.diff_ci_high,
            }
        return doc


def _calibrated(logits_val: np.ndarray, y_cal: np.ndarray, logits_cal: np.ndarray) -> Any:
    t = fit_temperature(y_cal, logits_cal)
    return apply_temperature(logits_val, t), t


def compare_rare_action_options(
    decisions: pd.DataFrame,
    result: Any,
    config: MlpConfig,
    seed: int,
    n_boot: int = 500,
    n_bins: int = 15,
) -> RareActions:
    """Compare the trained ``result`` (``train(decisions, config, seed)``) with the alternatives
    of the module docstring, on its validation learners."""
    from learnops.mlp.training import log_prior, train

    split = result.split
    val_rows, cal_rows = split.val_index, split.cal_index
    if len(cal_rows) == 0:
        cal_rows = val_rows
    y_all = decisions["action"].astype(str).map({a: i for i, a in enumerate(ACTIONS)})
    y_all = y_all.to_numpy(dtype=np.int64)
    y_val, y_cal = y_all[val_rows], y_all[cal_rows]
    X_val = feature_matrix(decisions.iloc[val_rows])
    X_cal = feature_matrix(decisions.iloc[cal_rows])
    prior = log_prior(y_all[split.train_index])

    def logits(model: Any, X: np.ndarray) -> np.ndarray:
        return model.logits_and_delta(X)[0]

    # the current model's logits without any logit adjustment it was trained with
    undo = config.logit_adjustment * prior
    lv, lc = logits(result.model, X_val) + undo, logits(result.model, X_cal) + undo
    probas: dict[str, np.ndarray] = {}
    temps: dict[str, float] = {}
    probas["current"], temps["current"] = _calibrated(lv - undo, y_cal, lc - undo)
    other = train(
        decisions,
        config.model_copy(update={"class_weights": not config.class_weights}),
        seed=seed,
    )
    name = "class_weights" if not config.class_weights else "no_class_weights"
    probas[name], temps[name] = _calibrated(
        logits(other.model, X_val), y_cal, logits(other.model, X_cal)
    )
    for tau in TAUS:
        if abs(tau - config.logit_adjustment) < 1e-12:
            continue
        key = f"logit_adjust_{tau:g}"
        probas[key], temps[key] = _calibrated(lv - tau * prior, y_cal, lc - tau * prior)
    learners = decisions["learner_hash"].to_numpy()[val_rows]
    table = compare_models(
        y_val,
        probas,
        learners,
        "current",
        ACTIONS,
        threshold=config.confidence_threshold,
        n_boot=n_boot,
        seed=seed,
        n_bins=n_bins,
    )
    recommended, verdict = _verdict(table)
    return RareActions(table=table, temperatures=temps, recommended=recommended, verdict=verdict)


def _verdict(table: pd.DataFrame) -> tuple[str | None, str]:
    t = table.set_index(["model", "metric"])
    rare = f"recall_{RARE_ACTION}"
    lines, winners = [], []
    for m in pd.unique(table["model"]):
        f1, ece, rec = t.loc[(m, "macro_f1")], t.loc[(m, "ece")], t.loc[(m, rare)]
        line = (
            f"{m}: {RARE_ACTION} recall {rec.estimate:.3f} [{rec.ci_low:.3f}, {rec.ci_high:.3f}], "
            f"ECE {ece.estimate:.3f} [{ece.ci_low:.3f}, {ece.ci_high:.3f}]"
        )
        if m != "current":
            line += (
                f", macro-F1 {f1['diff']:+.3f} [{f1.diff_ci_low:+.3f}, {f1.diff_ci_high:+.3f}] "
                "vs current"
            )
            if f1.diff_ci_low > 0 and ece.estimate <= MAX_ECE:
                winners.append((f1["diff"], m))
        lines.append(line)
    best = max(winners)[1] if winners else None
    # the acceptance question: which options recover the rare action more than half the time
    # while staying calibrated, and what they cost
    meets = [
        m
        for m in pd.unique(table["model"])
        if t.loc[(m, rare), "estimate"] > 0.5 and t.loc[(m, "ece"), "estimate"] <= MAX_ECE
    ]
    if meets:
        costs = "; ".join(
            f"{m}: accuracy {t.loc[(m, 'accuracy'), 'diff']:+.3f} "
            f"[{t.loc[(m, 'accuracy'), 'diff_ci_low']:+.3f}, "
            f"{t.loc[(m, 'accuracy'), 'diff_ci_high']:+.3f}]"
            for m in meets
            if m != "current"
        )
        reach = (
            f"{RARE_ACTION} recall > 0.5 with ECE ≤ {MAX_ECE}: {', '.join(meets)}"
            + (f" (accuracy vs current: {costs})" if costs else "")
            + "."
        )
    else:
        reach = f"No option reaches {RARE_ACTION} recall > 0.5 with ECE ≤ {MAX_ECE}."
    head = (
        f"Recommended: {best} (its macro-F1 gain has an interval above 0 and ECE ≤ {MAX_ECE})."
        if best
        else "The current loss stays: no alternative raises macro-F1 with an interval above 0 "
        f"while keeping ECE ≤ {MAX_ECE}."
    )
    return best, "\n".join([head, reach, *lines])
