"""A small known stochastic decision policy, for tests and benchmarks of the decision model.

Features are drawn from plausible ranges; actions follow a softmax-linear policy on standardized
features, so the Bayes-optimal accuracy (mean of max_a p(a | x)) is known (~0.87 by default).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.contracts import ACTIONS, FEATURES

__all__ = ["policy_probabilities", "synthetic_decisions"]

# (mean, sd, low, high, integer) of each raw feature
_DIST = {
    "recent_accuracy": (0.65, 0.2, 0.0, 1.0, False),
    "accuracy_trend": (0.0, 0.1, -0.5, 0.5, False),
    "avg_response_time_s": (25.0, 10.0, 2.0, 120.0, False),
    "response_time_trend": (0.0, 3.0, -15.0, 15.0, False),
    "consecutive_errors": (1.2, 1.5, 0.0, 10.0, True),
    "consecutive_correct": (2.0, 2.0, 0.0, 15.0, True),
    "hint_rate": (0.15, 0.12, 0.0, 1.0, False),
    "current_difficulty": (0.0, 1.0, -3.0, 3.0, False),
    "session_minutes": (20.0, 12.0, 0.0, 90.0, False),
    "minutes_since_break": (15.0, 10.0, 0.0, 90.0, False),
    "items_in_session": (15.0, 9.0, 0.0, 60.0, True),
    "engagement": (0.65, 0.18, 0.0, 1.0, False),
    "hour_of_day": (15.0, 4.0, 0.0, 23.0, True),
    "ability": (0.0, 1.0, -3.5, 3.5, False),
    "ability_se": (0.4, 0.15, 0.1, 1.5, False),
    "learning_velocity": (0.03, 0.02, -0.05, 0.15, False),
    "sessions_completed": (5.0, 4.0, 0.0, 40.0, True),
    "days_since_last_session": (3.0, 3.0, 0.0, 60.0, False),
}
_MEAN = np.array([_DIST[f][0] for f in FEATURES])
_SD = np.array([_DIST[f][1] for f in FEATURES])

# Policy weights on standardized features (rows: actions, columns: FEATURES)
_W = np.zeros((len(ACTIONS), len(FEATURES)))
_B = np.array([1.0, -0.4, -0.8, -0.6, -0.9])
_IDX = {f: i for i, f in enumerate(FEATURES)}


def _w(action: str, feature: str, value: float) -> None:
    _W[ACTIONS.index(action), _IDX[feature]] = value


_w("adjust_difficulty", "consecutive_correct", 2.4)
_w("adjust_difficulty", "recent_accuracy", 1.2)
_w("adjust_difficulty", "current_difficulty", -0.8)
_w("take_break", "minutes_since_break", 2.6)
_w("take_break", "engagement", -1.2)
_w("provide_help", "consecutive_errors", 2.8)
_w("provide_help", "hint_rate", 0.8)
_w("provide_help", "recent_accuracy", -1.0)
_w("change_activity", "engagement", -2.2)
_w("change_activity", "items_in_session", 1.2)
_w("continue", "engagement", 0.6)


def policy_probabilities(X: np.ndarray, sharpness: float = 2.6) -> np.ndarray:
    """p(action | raw features) of the known policy (n × 5)."""
    Z = (np.asarray(X, dtype=np.float64) - _MEAN) / _SD
    logits = sharpness * (Z @ _W.T + _B)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def synthetic_decisions(
    n: int, seed: int = 0, n_learners: int | None = None, sharpness: float = 2.6
) -> pd.DataFrame:
    """n decisions with FEATURES, learner_hash, action (sampled), difficulty_delta, p_true_<a>."""
    rng = np.random.default_rng(seed)
    n_learners = n_learners or max(2, n // 15)
    cols = {}
    for f in FEATURES:
        mean, sd, lo, hi, integer = _DIST[f]
        v = np.clip(rng.normal(mean, sd, n), lo, hi)
        cols[f] = np.round(v) if integer else v
    X = np.column_stack([cols[f] for f in FEATURES])
    p = policy_probabilities(X, sharpness)
    u = rng.random(n)[:, None]
    action_idx = (u > np.cumsum(p, axis=1)).sum(axis=1).clip(0, len(ACTIONS) - 1)
    actions = np.asarray(ACTIONS, dtype=object)[action_idx]
    learner = rng.integers(0, n_learners, n)
    df = pd.DataFrame(cols)
    df.insert(0, "learner_hash", [f"l{i:06d}" for i in learner])
    df.insert(0, "decision_id", [f"d{i:07d}" for i in range(n)])
    df["action"] = actions
    acc = (cols["recent_accuracy"] - 0.65) / 0.2
    delta = np.round(0.25 * acc + rng.normal(0, 0.05, n), 3)
    df["difficulty_delta"] = np.where(actions == "adjust_difficulty", delta, np.nan)
    df["propensity"] = p[np.arange(n), action_idx]
    for j, a in enumerate(ACTIONS):
        df[f"p_true_{a}"] = p[:, j]
    return df
