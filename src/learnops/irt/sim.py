"""Synthetic IRT responses with known item parameters (tests, benchmarks, notebooks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Simulated:
    """Long-format responses plus the true item table and abilities."""

    responses: pd.DataFrame
    items: pd.DataFrame
    theta: np.ndarray


def simulate(
    n_learners: int,
    n_items: int,
    per_learner: int | None = None,
    *,
    model: str = "2pl",
    seed: int = 0,
    string_ids: bool = True,
) -> Simulated:
    """Draw θ ~ N(0, 1), a ~ lognormal(0, 0.3), b ~ N(0, 1), c ~ Beta(5, 17) (3PL) and responses.

    ``per_learner=None`` gives a dense design (every learner answers every item); otherwise each
    learner answers ``per_learner`` distinct random items.
    """
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n_learners)
    a = np.exp(rng.normal(0.0, 0.3, n_items)) if model != "1pl" else np.ones(n_items)
    b = rng.normal(0.0, 1.0, n_items)
    c = rng.beta(5, 17, n_items) if model == "3pl" else np.zeros(n_items)
    if per_learner is None or per_learner >= n_items:
        learner = np.repeat(np.arange(n_learners), n_items)
        item = np.tile(np.arange(n_items), n_learners)
    else:
        learner = np.repeat(np.arange(n_learners), per_learner)
        # distinct items per learner: random offset + stride walk modulo n_items
        start = rng.integers(0, n_items, n_learners)
        step = np.arange(per_learner)
        item = (start[:, None] + step[None, :] * 1).ravel() % n_items
        item = rng.permutation(n_items)[item]
    z = a[item] * (theta[learner] - b[item])
    prob = c[item] + (1 - c[item]) / (1 + np.exp(-z))
    y = (rng.random(len(prob)) < prob).astype(np.int8)
    if string_ids:
        width_l, width_i = len(str(n_learners)), len(str(n_items))
        lid = np.char.add("u", np.char.zfill(learner.astype(str), width_l))
        iid = np.char.add("i", np.char.zfill(item.astype(str), width_i))
        item_ids = np.char.add("i", np.char.zfill(np.arange(n_items).astype(str), width_i))
    else:
        lid, iid, item_ids = learner, item, np.arange(n_items)
    responses = pd.DataFrame({"learner_id": lid, "item_id": iid, "correct": y})
    items = pd.DataFrame({"item_id": item_ids, "discrimination": a, "difficulty": b, "guessing": c})
    return Simulated(responses, items, theta)
