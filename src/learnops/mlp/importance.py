"""Global importance of the decision model's features, on its validation learners.

* **Permutation importance**: each feature's values are shuffled among the validation decisions
  (one seeded permutation per feature) and the drop in accuracy and the rise in log-loss
  (calibrated probabilities) are measured per decision; their means get learner-clustered
  bootstrap intervals (:func:`learnops.evaluation.bootstrap.bootstrap_mean_ci`).
* **Mean |attribution|** per feature and chosen action: the integrated gradients of
  :mod:`learnops.mlp.explain` averaged over the validation decisions.
* **Partial dependence and ICE**: scikit-learn's ``inspection.partial_dependence`` on the model
  wrapped as a fitted classifier (calibrated probabilities of the five actions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS, FEATURES
from learnops.evaluation.bootstrap import bootstrap_mean_ci
from learnops.mlp.calibration import apply_temperature
from learnops.mlp.features import feature_matrix
from learnops.mlp.model import MlpModel

__all__ = ["Importance", "SklearnWrapper", "global_importance"]


class SklearnWrapper:
    """The decision model as a fitted scikit-learn classifier: ``predict_proba`` gives the
    calibrated probabilities of ACTIONS from raw features (for ``sklearn.inspection``)."""

    _estimator_type = "classifier"

    def __init__(self, model: MlpModel) -> None:
        self.model = model
        self.classes_ = np.arange(len(ACTIONS))

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
        )

    def fit(self, X: Any, y: Any = None) -> SklearnWrapper:
        """No-op: the model is trained already."""
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """scikit-learn's estimator protocol (the model is the only parameter)."""
        return {"model": self.model}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated action probabilities (n × 5)."""
        logits, _ = self.model.logits_and_delta(np.asarray(X, dtype=np.float64))
        return apply_temperature(logits, self.model.temperature)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable action."""
        return self.predict_proba(X).argmax(axis=1)


@dataclass
class Importance:
    """What the train_mlp report shows about the features' global importance."""

    permutation: pd.DataFrame
    """Per feature: accuracy drop and log-loss rise with 95% intervals, most important first."""
    attribution: pd.DataFrame
    """Mean |integrated gradient| (logits), rows = features, columns = chosen actions (+ all)."""
    pd_grid: dict[str, np.ndarray]
    """Per top feature: the grid of raw values."""
    pd_average: dict[str, np.ndarray]
    """Per top feature: partial dependence, actions × grid (calibrated probability)."""
    ice: dict[str, np.ndarray]
    """Per top feature: ICE curves of the sampled decisions, actions × rows × grid."""


def global_importance(
    model: MlpModel,
    decisions: pd.DataFrame,
    seed: int,
    n_boot: int = 500,
    top: int = 3,
    ice_rows: int = 60,
    grid: int = 20,
) -> Importance:
    """Permutation importance, mean |attribution| and PD/ICE of the ``top`` features on
    ``decisions`` (the validation learners' rows: features, ``action``, ``learner_hash``)."""
    from sklearn.inspection import partial_dependence

    from learnops.mlp.explain import ATTR_PREFIX, explain_batch

    X = feature_matrix(decisions)
    y = decisions["action"].astype(str).map({a: i for i, a in enumerate(ACTIONS)}).to_numpy(int)
    learners = decisions["learner_hash"].to_numpy()
    est = SklearnWrapper(model)
    rows = np.arange(len(y))

    def per_row(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (P.argmax(axis=1) == y).astype(float), -np.log(np.clip(P[rows, y], 1e-15, 1))

    acc0, nll0 = per_row(est.predict_proba(X))
    rng = np.random.default_rng(seed)
    records = []
    for j, f in enumerate(FEATURES):
        Xp = X.copy()
        Xp[:, j] = X[rng.permutation(len(X)), j]
        acc, nll = per_row(est.predict_proba(Xp))
        rec: dict[str, Any] = {"feature": f}
        for name, d in (("accuracy_drop", acc0 - acc), ("log_loss_rise", nll - nll0)):
            if n_boot >= 1:
                m, lo, hi = bootstrap_mean_ci(d, learners, n_boot=n_boot, seed=seed)
            else:
                m, lo, hi = float(d.mean()), float("nan"), float("nan")
            rec.update({name: m, f"{name}_ci_low": lo, f"{name}_ci_high": hi})
        records.append(rec)
    perm = pd.DataFrame(records).sort_values("log_loss_rise", ascending=False, kind="stable")
    perm = perm.set_index("feature")

    attr = explain_batch(model, decisions)
    mag = attr[[ATTR_PREFIX + f for f in FEATURES]].abs()
    mag.columns = list(FEATURES)
    by_action = mag.groupby(attr["action"].to_numpy()).mean().T
    by_action = by_action.reindex(columns=[a for a in ACTIONS if a in by_action.columns])
    by_action["all decisions"] = mag.mean()
    by_action = by_action.loc[perm.index]

    sample = rng.choice(len(X), size=min(ice_rows, len(X)), replace=False)
    grids, avg, ice = {}, {}, {}
    for f in perm.index[:top]:
        j = FEATURES.index(f)
        res = partial_dependence(
            est, X[sample], [j], kind="both", grid_resolution=grid, percentiles=(0.02, 0.98)
        )
        grids[f] = np.asarray(res["grid_values"][0])
        avg[f] = np.asarray(res["average"])
        ice[f] = np.asarray(res["individual"])
    return Importance(
        permutation=perm, attribution=by_action, pd_grid=grids, pd_average=avg, ice=ice
    )
