"""Per-cohort decision models with a fallback to the global model (a building block of
``mlp.cohort_by``; not yet a params key, an artifact format or a served model).

``cohort_by`` is ``module`` (a ``module`` column the caller attaches, e.g.
:func:`learnops.stages.evaluate.decision_modules`) or ``ability_band`` (terciles of the ``ability``
feature, cut at the training rows' terciles, so a served decision can be routed from its
features alone). One model is trained on all rows (the global model) and one per cohort with at
least ``min_rows`` rows; a row of a smaller or unseen cohort is decided by the global model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnops.config import MlpConfig
from learnops.errors import LearnopsError
from learnops.mlp.inference import predict_batch
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

    def predict_batch(self, df: pd.DataFrame) -> pd.DataFrame:
        """``learnops.mlp.predict_batch`` of each row by its cohort's model (the global model
        for a cohort without one), plus a ``model`` column naming the model used."""
        labels = cohort_labels(df, self.cohort_by, self.edges)
        out = predict_batch(self.global_model, df).assign(model="global")
        for name, model in self.models.items():
            rows = labels == name
            if rows.any():
                part = predict_batch(model, df.loc[rows]).assign(model=name)
                out.loc[rows, part.columns] = part.to_numpy()
        return out


def train_cohort_models(
    decisions: pd.DataFrame,
    config: MlpConfig,
    seed: int,
    cohort_by: str,
    min_rows: int = 500,
    **train_kwargs: Any,
) -> CohortModels:
    """Train the global model and one model per cohort with ≥ ``min_rows`` rows (each with the
    learnops.mlp.train recipe: learner split, early stopping, temperature)."""
    from learnops.mlp.training import train

    edges = None
    if cohort_by == "ability_band":
        a = pd.to_numeric(decisions["ability"], errors="coerce").to_numpy(dtype=float)
        q1, q2 = np.quantile(a, [1 / 3, 2 / 3])
        edges = (float(q1), float(q2))
    labels = cohort_labels(decisions, cohort_by, edges)
    glob = train(decisions, config, seed=seed, **train_kwargs).model
    models, sizes = {}, {}
    for name in sorted(set(labels), key=str):
        rows = labels == name
        sizes[str(name)] = int(rows.sum())
        if rows.sum() >= min_rows:
            models[str(name)] = train(decisions.loc[rows], config, seed=seed, **train_kwargs).model
    return CohortModels(cohort_by, glob, models, edges, sizes)
