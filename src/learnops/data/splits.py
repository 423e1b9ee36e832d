"""Held-out splits by learner (the randomization unit): no learner on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd

from learnops.data.hashing import bucket


def learner_holdout(
    df: pd.DataFrame, frac: float, seed: int, col: str = "learner_hash"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, test) with about ``frac`` of learners in test.

    A learner's side depends only on (seed, learner), so it stays put when the data grow.
    """
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    learners = pd.unique(df[col].astype(str))
    in_test = {lh: bucket(f"holdout:{seed}", lh) < frac for lh in learners}
    mask = df[col].astype(str).map(in_test).to_numpy(dtype=bool)
    if mask.all() or not mask.any():  # tiny data: force both sides non-empty
        order = sorted(learners, key=lambda lh: bucket(f"holdout:{seed}", lh))
        k = max(1, min(len(order) - 1, round(frac * len(order))))
        test = set(order[:k])
        mask = df[col].astype(str).isin(test).to_numpy()
    return df.loc[~mask].reset_index(drop=True), df.loc[mask].reset_index(drop=True)


def holdout_learners(
    df: pd.DataFrame, frac: float, seed: int, col: str = "learner_hash"
) -> np.ndarray:
    """The learners :func:`learner_holdout` puts on the test side."""
    return pd.unique(learner_holdout(df, frac, seed, col)[1][col])
