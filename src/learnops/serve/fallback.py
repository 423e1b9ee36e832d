"""The fallback teacher used when the model is absent or unsure (an LLM client in production)."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from learnops.contracts import ACTIONS, FEATURES

__all__ = ["FallbackTeacher", "RuleTeacher"]


@runtime_checkable
class FallbackTeacher(Protocol):
    """Decides for one situation: ``decide(features) -> (action, probabilities)``.

    ``probabilities`` maps each action to a probability (may be empty when unknown). An optional
    ``name`` attribute is logged as the decision's model_version. A teacher whose action is a
    draw from the returned probabilities sets ``samples = True``: the logged propensities then
    mix the served action's exploration with that distribution. Otherwise (the default, e.g. an
    LLM that answers one action) the teacher counts as deterministic: its answer has
    probability 1 before exploration.
    """

    def decide(self, features: Mapping[str, float]) -> tuple[str, Mapping[str, float]]: ...


class RuleTeacher:
    """The offline default: the simulator's noisy rule teacher (the LLM stand-in that produced
    the training data), which draws its action from ``teacher_probabilities``; with
    ``sample=False`` it answers the most probable action instead."""

    name = "rule-teacher"

    def __init__(self, sample: bool = True, seed: int | str | None = None) -> None:
        self.samples = bool(sample)
        # exploration-style draws, not security  # nosec B311
        self._rng = random.Random(seed)  # nosec B311
        self._lock = threading.Lock()

    def decide(self, features: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
        """An action drawn from (or the argmax of) ``teacher_probabilities``, and those."""
        from learnops.data.simulate import teacher_probabilities

        x = np.fromiter((float(features[f]) for f in FEATURES), dtype=np.float64, count=18)
        p = teacher_probabilities(x[None, :])[0]
        probs = {a: float(v) for a, v in zip(ACTIONS, p, strict=True)}
        if not self.samples:
            return ACTIONS[int(p.argmax())], probs
        with self._lock:
            u = self._rng.random()
        k = min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(ACTIONS) - 1)
        return ACTIONS[k], probs
