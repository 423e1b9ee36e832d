"""Per-cohort decision models with a fallback to the global model (``mlp.cohort_by``).

``cohort_by`` is ``module`` (a ``module`` column the caller attaches, e.g.
:func:`learnops.evaluation.slices.decision_modules`) or ``ability_band`` (terciles of the
``ability`` feature, cut at the training rows' terciles, so a served decision can be routed from its
features alone). One model is trained on all rows (the global model) and one per cohort with at
least ``min_rows`` rows; a row of a smaller or unseen cohort is decided by the global model.
So is a row without a ``module`` (``/decide`` requests carry only the 18 features: a
``module``-cohort set decides them with the global model; ability bands route from the features).
Saved as one artifact by :func:`learnops.mlp.artifacts.save_set`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnops.config import MlpConfig
from learnops.contracts import FEATURES
from learnops.errors import LearnopsError
from learnops.mlp.inference import PROBA_COLUMNS, Prediction, predict, predict_batch
from learnops.mlp.model import MlpModel

__all__ = ["COHORT_BY", "CohortModels", "cohort_labels", "train_cohort_models"]

COHORT_BY = ("module", "ability_band")


def cohort_labels(
    df: pd.DataFrame, cohort_by: str, edges: tuple[float, float] | None = None
) -> np.ndarray:
    """Each row's cohort: its ``module``, or its ability band (``low``/``middle``/``high``,
    cut at ``edges``)."""
    if cohort_by == "module":
        if "module" not in df.columns:
            raise LearnopsError("cohort_by=module needs a module column")
        return df["module"].astype(str).to_numpy(dtype=object)
    if cohort_by == "ability_band":
        if edges is None:
            raise LearnopsError("ability bands need the training terciles (edges)")
        a = pd.to_numeric(df["ability"], errors="coerce").to_numpy(dtype=float)
        return np.where(a <= edges[0], "low", np.where(a <= edges[1], "middle", "high")).astype(
            object
        )
    raise LearnopsError(f"cohort_by must be one of {COHORT_BY}, got {cohort_by!r}")


@dataclass
class CohortModels:
    """The global model, the per-cohort models and how rows are routed to them."""

    cohort_by: str
    global_model: MlpModel
    models: dict[str, MlpModel]
    edges: tuple[float, float] | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    """Training rows per cohort (those below ``min_rows`` have no model of their own)."""
    kind: str = "cohort"
    #: ``logits_and_delta`` returns log calibrated probabilities (see :class:`Ensemble`).
    temperature: float = 1.0

    @property
    def actions(self) -> tuple[str, ...]:
        """The action order of the probabilities."""
        return self.global_model.actions

    @property
    def metadata(self) -> dict[str, Any]:
        """The global model's metadata."""
        return self.global_model.metadata

    @property
    def delta_trained(self) -> bool:
        """Whether the global model's difficulty head was trained."""
        return self.global_model.delta_trained

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """Each row's cohort (``None`` for a row routed to the global model: no ``module``)."""
        if self.cohort_by == "module" and "module" not in df.columns:
            return np.full(len(df), None, dtype=object)
        return cohort_labels(df, self.cohort_by, self.edges)

    def model_for(self, features: Mapping[str, Any]) -> MlpModel:
        """The model that decides one situation (its cohort's, else the global model)."""
        key = "module" if self.cohort_by == "module" else "ability"
        if key not in features:
            return self.global_model
        label = self.labels(pd.DataFrame({key: [features[key]]}))[0]
        return self.models.get(str(label), self.global_model)

    def predict(self, features: Mapping[str, Any]) -> Prediction:
        """One decision by its cohort's model."""
        return predict(self.model_for(features), features)  # type: ignore[return-value]

    def predict_batch(self, df: pd.DataFrame, include_delta: bool = False) -> pd.DataFrame:
        """``learnops.mlp.predict_batch`` of each row by its cohort's model (the global model
        for a cohort without one), plus a ``model`` column naming the model used."""
        labels = self.labels(df)
        out = predict_batch(self.global_model, df, include_delta).assign(model="global")
        for name, model in self.models.items():
            rows = labels == name
            if rows.any():
                part = predict_batch(model, df.loc[rows], include_delta).assign(model=name)
                out.loc[rows, part.columns] = part.to_numpy()
        for c in [*PROBA_COLUMNS, "confidence"]:
            out[c] = out[c].astype(float)
        return out

    def logits_and_delta(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log calibrated probabilities (n × 5) and difficulty_delta of raw feature rows, each
        by its cohort's model (rows of a matrix have no module: ``module`` sets use the global
        model here; use :meth:`predict_batch` with a ``module`` column)."""
        from learnops.mlp.calibration import apply_temperature

        def run(m: MlpModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            logits, delta = m.logits_and_delta(x)
            return apply_temperature(logits, m.temperature), delta

        p, delta = run(self.global_model, X)
        if self.cohort_by == "ability_band" and len(X):
            a = pd.DataFrame({"ability": X[:, FEATURES.index("ability")]})
            labels = self.labels(a)
            for name, model in self.models.items():
                rows = labels == name
                if rows.any():
                    p[rows], delta[rows] = run(model, X[rows])
        with np.errstate(divide="ignore"):
            return np.log(p), delta

    def explain(self, features: Mapping[str, Any], action: str | None = None) -> Any:
        """The integrated-gradients explanation by the decision's cohort model."""
        from learnops.mlp.explain import explain

        return explain(self.model_for(features), features, action)


def train_cohort_models(
    decisions: pd.DataFrame,
    config: MlpConfig,
    seed: int,
    cohort_by: str,
    min_rows: int = 500,
    global_model: MlpModel | None = None,
    **train_kwargs: Any,
) -> CohortModels:
    """Train the global model and one model per cohort with ≥ ``min_rows`` rows (each with the
    learnops.mlp.train recipe: learner split, early stopping, temperature); ``global_model``, when
    given, is used instead of training the global model again."""
    from learnops.mlp.training import train

    edges = None
    if cohort_by == "ability_band":
        a = pd.to_numeric(decisions["ability"], errors="coerce").to_numpy(dtype=float)
        q1, q2 = np.quantile(a, [1 / 3, 2 / 3])
        edges = (float(q1), float(q2))
    labels = cohort_labels(decisions, cohort_by, edges)
    glob = global_model or train(decisions, config, seed=seed, **train_kwargs).model
    models, sizes = {}, {}
    for name in sorted(set(labels), key=str):
        rows = labels == name
        sizes[str(name)] = int(rows.sum())
        if rows.sum() >= min_rows:
            models[str(name)] = train(decisions.loc[rows], config, seed=seed, **train_kwargs).model
    return CohortModels(cohort_by, glob, models, edges, sizes)
