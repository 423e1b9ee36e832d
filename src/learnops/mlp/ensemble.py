"""Seed ensembles of the decision model (``mlp.ensemble: N``): the mean of N models' calibrated
probabilities.

Member 0 is trained with params' ``seed`` (so an ensemble of one is the single model); member
``i`` with :func:`member_seeds`'s ``i``-th seed, derived from it. Each member keeps its own
temperature; the ensemble averages the temperature-scaled probabilities, decides their argmax and
reports their max as the confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS
from learnops.mlp.inference import (
    PROBA_COLUMNS,
    Prediction,
    fill_predictions,
    predict,
    predict_batch,
    prediction_from,
)
from learnops.mlp.model import MlpModel

__all__ = ["Ensemble", "member_seeds", "train_ensemble"]


def member_seeds(seed: int, n: int) -> list[int]:
    """The N members' seeds: ``seed`` itself, then seeds drawn from ``SeedSequence([seed, i])``."""
    extra = [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(1, n)]
    return [int(seed), *extra]


def _mean_prediction(preds: list[Prediction]) -> Prediction:
    p = np.mean([[q.probabilities[a] for a in ACTIONS] for q in preds], axis=0)
    adjust = [q.adjust_delta for q in preds if q.adjust_delta is not None]
    return prediction_from(p, float(np.mean(adjust)) if adjust else None)


@dataclass
class Ensemble:
    """N decision models whose calibrated probabilities are averaged."""

    members: list[MlpModel]
    seeds: list[int] = field(default_factory=list)
    kind: str = "ensemble"

    @property
    def actions(self) -> tuple[str, ...]:
        """The action order of the probabilities."""
        return self.members[0].actions

    @property
    def metadata(self) -> dict[str, Any]:
        """Member 0's metadata (the model trained with params' seed)."""
        return self.members[0].metadata

    #: The averaged probabilities are already calibrated: ``logits_and_delta`` returns their
    #: logarithm, so ``softmax(logits / temperature)`` gives them back.
    temperature: float = 1.0

    def predict(self, features: Mapping[str, Any]) -> Prediction:
        """The ensemble's decision for one situation (mean of the members' probabilities)."""
        return _mean_prediction([predict(m, features) for m in self.members])

    def predict_batch(self, df: pd.DataFrame, include_delta: bool = False) -> pd.DataFrame:
        """``learnops.mlp.predict_batch`` with the members' mean probabilities."""
        parts = [predict_batch(m, df, include_delta=False) for m in self.members]
        p = np.mean([q[list(PROBA_COLUMNS)].to_numpy(dtype=float) for q in parts], axis=0)
        delta = self.logits_and_delta(_features(df))[1] if include_delta else None
        return fill_predictions(parts[0].copy(), p, delta, self.delta_trained)

    @property
    def delta_trained(self) -> bool:
        """Whether the members' difficulty heads were trained."""
        return all(m.delta_trained for m in self.members)

    def logits_and_delta(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log of the mean calibrated probabilities (n × 5) and the mean difficulty_delta."""
        from learnops.mlp.calibration import apply_temperature

        probs, deltas = [], []
        for m in self.members:
            logits, delta = m.logits_and_delta(X)
            probs.append(apply_temperature(logits, m.temperature))
            deltas.append(delta)
        with np.errstate(divide="ignore"):
            return np.log(np.mean(probs, axis=0)), np.mean(deltas, axis=0)

    def explain(self, features: Mapping[str, Any], action: str | None = None) -> Any:
        """Integrated gradients of the members' mean logit for ``action`` (default: the
        ensemble's choice): the mean of the members' explanations (IG is linear in the model,
        so completeness holds for the mean logit)."""
        from learnops.mlp.explain import Explanation, explain

        action = action or self.predict(features).action
        parts = [explain(m, features, action) for m in self.members]
        return Explanation(
            action=action,
            values=parts[0].values,
            attributions={
                k: float(np.mean([e.attributions[k] for e in parts])) for k in parts[0].attributions
            },
            logit=float(np.mean([e.logit for e in parts])),
            baseline_logit=float(np.mean([e.baseline_logit for e in parts])),
        )


def _features(df: pd.DataFrame) -> np.ndarray:
    from learnops.mlp.features import feature_matrix

    return feature_matrix(df)


def train_ensemble(
    decisions: pd.DataFrame,
    config: Any,
    seed: int,
    n: int,
    first: MlpModel | None = None,
    **train_kwargs: Any,
) -> Ensemble:
    """Train N members with :func:`member_seeds` (``first``, when given, is member 0: the
    model already trained with ``seed``)."""
    from learnops.mlp.training import train

    seeds = member_seeds(seed, n)
    members = []
    for i, s in enumerate(seeds):
        if i == 0 and first is not None:
            members.append(first)
        else:
            members.append(train(decisions, config, seed=s, **train_kwargs).model)
    return Ensemble(members, seeds)
