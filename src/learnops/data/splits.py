"""Held-out splits. The decision model holds out whole learners (the randomization unit: no
learner on both sides); the IRT model holds out each learner's latest responses, since it must
know a learner's ability to predict their answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from learnops.data.hashing import bucket
from learnops.errors import LearnopsError

if TYPE_CHECKING:
    from learnops.config import Params


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


def response_holdout(
    responses: pd.DataFrame, frac: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the last ``frac`` of each learner's responses (by ``timestamp`` if present)."""
    from learnops.irt.data import learner_column

    if not 0 < frac < 1:
        raise LearnopsError(f"holdout fraction must be in (0, 1), got {frac}")
    lcol = learner_column(responses)
    df = responses.reset_index(drop=True)
    order = df.sort_values("timestamp", kind="stable").index if "timestamp" in df else df.index
    ranked = df.loc[order]
    pos = ranked.groupby(lcol, sort=False).cumcount().to_numpy()
    size = ranked.groupby(lcol, sort=False)[lcol].transform("size").to_numpy()
    n_test = np.minimum(np.floor(frac * size + 0.5), size - 1)
    is_test = pd.Series(pos >= size - n_test, index=ranked.index).reindex(df.index).to_numpy()
    return (
        responses.iloc[np.flatnonzero(~is_test)],
        responses.iloc[np.flatnonzero(is_test)],
    )


def mlp_holdout(decisions: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) for the decision model: test = a stable share of learners."""
    return learner_holdout(decisions, params.evaluate.test_split, params.seed)


def irt_holdout(responses: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) for the IRT model: each learner's last responses in time (test rows of
    items never seen in training are dropped: no parameters exist for them)."""
    train, test = response_holdout(responses, params.irt.holdout_frac)
    test = test[test["item_id"].isin(set(train["item_id"]))].reset_index(drop=True)
    return train, test
