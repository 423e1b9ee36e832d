"""Logging policies with epsilon exploration: the served action, its propensity and the whole
distribution it was drawn from.

A policy proposes a *base* distribution over the five actions: one-hot on its choice for a
deterministic policy (the model's argmax, a teacher that answers one action), or the teacher's
own distribution when the teacher draws its action from it. With probability ``epsilon`` the
served action is instead drawn uniformly, so the logging distribution is

    p = (1 − ε) · base + ε / K            (K = 5 actions)

and the propensity of the served action ``a`` is ``p[a]``: 1 − ε + ε/K for a deterministic
policy's choice, ε/K for any other action. Serving, off-policy evaluation and the traffic
simulator all use these functions, so the logged propensities and the target policies of OPE
are computed the same way.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from learnops.contracts import ACTIONS
from learnops.errors import LearnopsError

__all__ = [
    "Served",
    "check_epsilon",
    "epsilon_greedy",
    "mix_uniform",
    "one_hot",
    "serve_action",
]

K = len(ACTIONS)


def check_epsilon(epsilon: float) -> float:
    """``epsilon`` as a float in [0, 1]; a LearnopsError otherwise."""
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise LearnopsError(f"epsilon must be a number in [0, 1], got {epsilon!r}") from None
    if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
        raise LearnopsError(f"epsilon must be in [0, 1], got {epsilon!r}")
    return eps


def one_hot(action: str) -> tuple[float, ...]:
    """The distribution that puts all its mass on ``action``."""
    if action not in ACTIONS:
        raise LearnopsError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return tuple(1.0 if a == action else 0.0 for a in ACTIONS)


def _as_distribution(base: Mapping[str, float] | Sequence[float]) -> tuple[float, ...]:
    if isinstance(base, Mapping):
        unknown = set(base) - set(ACTIONS)
        if unknown:
            raise LearnopsError(f"unknown action(s) {sorted(unknown)} in a distribution")
        values = [float(base.get(a, 0.0)) for a in ACTIONS]
    else:
        values = [float(v) for v in base]
        if len(values) != K:
            raise LearnopsError(f"a distribution needs {K} probabilities, got {len(values)}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise LearnopsError("a distribution's probabilities must be finite and >= 0")
    total = sum(values)
    if not total > 0:
        raise LearnopsError("a distribution's probabilities must not all be 0")
    return tuple(v / total for v in values)


def mix_uniform(base: Mapping[str, float] | Sequence[float], epsilon: float) -> tuple[float, ...]:
    """(1 − ε)·base + ε/K, in ACTIONS order (``base`` is normalized first)."""
    eps = check_epsilon(epsilon)
    b = _as_distribution(base)
    return tuple((1.0 - eps) * v + eps / K for v in b)


def epsilon_greedy(scores: npt.ArrayLike, epsilon: float) -> np.ndarray:
    """(n, K) probabilities of the policy that takes each row's argmax of ``scores`` (first
    maximum on ties) with probability 1 − ε and a uniform action otherwise."""
    eps = check_epsilon(epsilon)
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[1] != K:
        raise LearnopsError(f"scores must be an (n, {K}) array, got {s.shape}")
    out = np.full(s.shape, eps / K)
    out[np.arange(s.shape[0]), np.argmax(s, axis=1)] += 1.0 - eps
    return out


@dataclass(frozen=True)
class Served:
    """The action served, whether it was explored, its propensity and the logging distribution
    (ACTIONS order)."""

    action: str
    explored: bool
    propensity: float
    distribution: tuple[float, ...]

    def columns(self) -> dict[str, float | bool]:
        """``propensity``, ``p_<action>`` for every action and ``explored``, as logged."""
        return {
            "propensity": self.propensity,
            **{f"p_{a}": p for a, p in zip(ACTIONS, self.distribution, strict=True)},
            "explored": self.explored,
        }


def serve_action(
    rng: random.Random,
    choice: str,
    epsilon: float,
    base: Mapping[str, float] | Sequence[float] | None = None,
) -> Served:
    """Draw the served action: uniform with probability ε (explored), else the policy's
    ``choice``. ``base`` is the distribution ``choice`` was drawn from when the policy is
    stochastic (default: one-hot on ``choice``, a deterministic policy); the propensity is the
    probability the mixture gave the served action."""
    eps = check_epsilon(epsilon)
    dist = mix_uniform(one_hot(choice) if base is None else base, eps)
    if base is not None and dist[ACTIONS.index(choice)] <= 0:
        raise LearnopsError(f"the policy chose {choice!r}, which its distribution gives 0")
    explored = eps > 0 and rng.random() < eps
    action = ACTIONS[rng.randrange(K)] if explored else choice
    return Served(action, explored, dist[ACTIONS.index(action)], dist)
