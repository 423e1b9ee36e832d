"""The fallback teacher used when the model is absent or unsure (an LLM client in production)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from learnops.contracts import ACTIONS, FEATURES

__all__ = ["FallbackTeacher", "RuleTeacher"]


@runtime_checkable
class FallbackTeacher(Protocol):
    """Decides for one situation: ``decide(features) -> (action, probabilities)``.

    ``probabilities`` maps each action to a probability (may be empty when unknown). An optional
    ``name`` attribute is logged as the decision's model_version.
    """

    def decide(self, features: Mapping[str, float]) -> tuple[str, Mapping[str, float]]: ...


class RuleTeacher:
    """The offline default: the simulator's rule policy, taking its most probable action."""

    name = "rule-teacher"

    def decide(self, features: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
        """The argmax action of ``teacher_probabilities`` and the probabilities."""
        from learnops.data.simulate import teacher_probabilities

        x = np.fromiter((float(features[f]) for f in FEATURES), dtype=np.float64, count=18)
        p = teacher_probabilities(x[None, :])[0]
        return ACTIONS[int(p.argmax())], {a: float(v) for a, v in zip(ACTIONS, p, strict=True)}
