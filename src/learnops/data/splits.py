"""Held-out splits. The decision model holds out whole learners (the randomization unit: no
learner on both sides), by a seeded hash of the learner (:func:`learner_split_mask`, also used for
its validation split); the IRT model holds out each learner's latest responses, since it must know
a learner's ability to predict their answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError
from learnops.hashing import bucket

if TYPE_CHECKING:
    from learnops.config import Params


LEARNER_COLUMNS = ("learner_id", "learner_hash")


def learner_column(df: pd.DataFrame, what: str = "responses") -> str:
    """The learner id column: ``learner_id`` if present, else ``learner_hash``."""
    for col in LEARNER_COLUMNS:
        if col in df.columns:
            return col
    raise LearnopsError(f"{what}: missing column: learner_id (or learner_hash)")


def learner_split_mask(
    learners: pd.Series | np.ndarray, frac: float, seed: int, namespace: str = "holdout"
) -> np.ndarray:
    """Per row, whether its learner is on the held-out side: learners whose stable hash bucket
    ``bucket(f"{namespace}:{seed}", learner)`` is below ``frac`` (about ``frac`` of learners).

    A learner's side depends only on (namespace, seed, learner), so it stays put when the data
    grow. With two or more learners both sides are non-empty (on tiny data the learners with the
    lowest buckets are held out).
    """
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    values = np.asarray(learners)
    codes, uniques = pd.factorize(values)  # uniques in order of appearance
    if not all(type(k) is str for k in uniques):  # ids as str first (e.g. numbers)
        codes, uniques = pd.factorize(pd.Series(values).astype(str))
    ns = f"{namespace}:{seed}"
    u = np.fromiter((bucket(ns, k) for k in uniques), dtype=float, count=len(uniques))
    mask = (u < frac)[codes]
    if len(uniques) and (mask.all() or not mask.any()):  # tiny data: force both sides non-empty
        order = sorted(range(len(uniques)), key=u.__getitem__)  # by bucket, ties by appearance
        k = max(1, min(len(order) - 1, round(frac * len(order))))
        held = np.zeros(len(uniques), dtype=bool)
        held[order[:k]] = True
        mask = held[codes]
    return mask


def learner_holdout(
    df: pd.DataFrame, frac: float, seed: int, col: str = "learner_hash"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, test) with about ``frac`` of learners in test
    (:func:`learner_split_mask`: stable as the data grow)."""
    mask = learner_split_mask(df[col], frac, seed, "holdout")
    return df.loc[~mask].reset_index(drop=True), df.loc[mask].reset_index(drop=True)


def response_holdout(
    responses: pd.DataFrame, frac: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the last ``frac`` of each learner's responses (by ``timestamp`` if present)."""
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
