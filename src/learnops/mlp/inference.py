"""Inference: one decision (numpy fast path) or a table of decisions (torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.mlp.features import feature_matrix, feature_vector
from learnops.mlp.model import MlpModel

__all__ = [
    "ID_COLUMNS",
    "PROBA_COLUMNS",
    "Prediction",
    "fill_predictions",
    "predict",
    "predict_batch",
]

#: Input columns copied to batch predictions, when present.
ID_COLUMNS: tuple[str, ...] = ("decision_id", "learner_hash")
PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{a}" for a in ACTIONS)


@dataclass(frozen=True)
class Prediction:
    """The model's decision for one situation."""

    action: str
    probabilities: dict[str, float]
    confidence: float
    difficulty_delta: float | None = None
    #: The difficulty change the model proposes were ``adjust_difficulty`` served (None when
    #: its difficulty head was not trained); ``difficulty_delta`` is it when that is the argmax.
    adjust_delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "action": self.action,
            "probabilities": dict(self.probabilities),
            "confidence": self.confidence,
            "difficulty_delta": self.difficulty_delta,
        }


def predict(
    model: MlpModel, features: Mapping[str, Any] | pd.DataFrame
) -> Prediction | pd.DataFrame:
    """Decide for one situation (a mapping of the 18 features; extra keys ignored).

    A DataFrame is passed on to ``predict_batch``. Missing or non-finite features raise
    LearnopsError. Probabilities are temperature-calibrated; confidence is the largest one.
    A model set (:class:`~learnops.mlp.ensemble.Ensemble`,
    :class:`~learnops.mlp.cohorts.CohortModels`) decides with its own ``predict``.
    """
    if isinstance(features, pd.DataFrame):
        return predict_batch(model, features)
    if not isinstance(model, MlpModel):
        return model.predict(features)
    out = model.raw_outputs_np(feature_vector(features))
    k = len(ACTIONS)
    z = out[:k] / model.temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    adjust = float(out[k] * model.delta_std + model.delta_mean) if model.delta_trained else None
    return prediction_from(p, adjust)


def prediction_from(p: np.ndarray, adjust: float | None) -> Prediction:
    """The :class:`Prediction` of the action probabilities ``p`` (in :data:`ACTIONS` order) and
    the predicted difficulty change ``adjust`` (None when the model has no delta head)."""
    best = int(p.argmax())
    return Prediction(
        action=ACTIONS[best],
        probabilities={a: float(v) for a, v in zip(ACTIONS, p, strict=True)},
        confidence=float(p[best]),
        difficulty_delta=adjust if best == ACTIONS.index("adjust_difficulty") else None,
        adjust_delta=adjust,
    )


def predict_batch(model: MlpModel, df: pd.DataFrame, include_delta: bool = False) -> pd.DataFrame:
    """Predictions for every row: id columns (if present), p_<action>..., action, confidence.

    ``include_delta`` adds the predicted difficulty_delta (NaN unless the action is
    adjust_difficulty). The index of ``df`` is kept. A model set uses its own ``predict_batch``.
    """
    if not isinstance(model, MlpModel):
        return model.predict_batch(df, include_delta=include_delta)
    X = feature_matrix(df)
    logits, delta = model.logits_and_delta(X)
    z = logits / model.temperature
    z -= z.max(axis=1, keepdims=True) if len(z) else 0.0
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    out = pd.DataFrame(index=df.index)
    for c in ID_COLUMNS:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    return fill_predictions(out, p, delta if include_delta else None, model.delta_trained)


def fill_predictions(
    out: pd.DataFrame, p: np.ndarray, delta: np.ndarray | None, delta_trained: bool
) -> pd.DataFrame:
    """Write the batch predictions of the action probabilities ``p`` (n × 5, :data:`ACTIONS`
    order) into ``out`` (n rows): ``p_<action>``, ``action`` (the argmax), ``confidence`` (the
    max) and, when ``delta`` is given, ``difficulty_delta`` (NaN unless the action is
    adjust_difficulty and ``delta_trained``). Returns ``out``."""
    for j, c in enumerate(PROBA_COLUMNS):
        out[c] = p[:, j]
    best = p.argmax(axis=1) if len(p) else np.empty(0, dtype=np.int64)
    out["action"] = np.asarray(ACTIONS, dtype=object)[best]
    out["confidence"] = p.max(axis=1) if len(p) else np.empty(0)
    if delta is not None:
        adjust = best == ACTIONS.index("adjust_difficulty")
        out["difficulty_delta"] = np.where(adjust & delta_trained, delta, np.nan)
    return out
