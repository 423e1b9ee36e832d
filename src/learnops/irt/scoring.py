"""Ability scoring (EAP, MAP) against fixed item parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from learnops.errors import LearnopsError
from learnops.irt.data import encode
from learnops.irt.estep import quadrature
from learnops.irt.params import Params


def item_params(items: pd.DataFrame) -> Params:
    """Internal (a, d, g) parameters from an items table (discrimination, difficulty[, c])."""
    missing = [c for c in ("item_id", "discrimination", "difficulty") if c not in items.columns]
    if missing:
        raise LearnopsError(f"items table: missing column(s): {', '.join(missing)}")
    a = items["discrimination"].to_numpy(float)
    b = items["difficulty"].to_numpy(float)
    g = None
    if "guessing" in items.columns:
        c = np.clip(items["guessing"].to_numpy(float), 1e-12, 1 - 1e-12)
        g = np.log(c / (1 - c))
    return Params(a, -a * b, g)


def probability(p: Params, item_idx: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """P(correct) for paired item indices and abilities."""
    z = p.a[item_idx] * theta + p.d[item_idx]
    s = expit(z)
    if p.g is None:
        return s
    c = expit(p.g[item_idx])
    return c + (1 - c) * s


def _align(items: pd.DataFrame, responses: pd.DataFrame):
    enc = encode(responses, "responses")
    ids = items["item_id"].astype(str).to_numpy()
    pos = pd.Index(ids).get_indexer(enc.item_ids)
    if (pos < 0).any():
        unknown = enc.item_ids[pos < 0]
        shown = ", ".join(map(str, unknown[:20])) + (", ..." if len(unknown) > 20 else "")
        raise LearnopsError(f"{len(unknown)} item(s) not in the fitted items: {shown}")
    full = item_params(items)
    g = None if full.g is None else full.g[pos]
    return enc, Params(full.a[pos], full.d[pos], g)


def score(
    items: pd.DataFrame,
    responses: pd.DataFrame,
    method: str = "eap",
    *,
    quad_points: int = 61,
    quad_range: float = 6.0,
    engine: Any = None,
) -> pd.DataFrame:
    """θ and its SE per learner (N(0, 1) prior) given fixed item parameters.

    ``method`` is ``eap`` (posterior mean and SD) or ``map`` (posterior mode, SE from the
    curvature at the mode). Returns columns learner_id, theta, theta_se, n_responses. The EAP
    pass runs over learner shards on ``engine`` (``learnops.irt.parallel``; default: threads on
    all cores).
    """
    if method not in {"eap", "map"}:
        raise LearnopsError(f"scoring method must be 'eap' or 'map', not {method!r}")
    enc, p = _align(items, responses)
    theta, logw = quadrature(quad_points, quad_range)
    from learnops.irt.parallel import LocalEngine, ShardedEStep

    eng = engine or LocalEngine()
    try:
        ab = ShardedEStep(enc, theta, logw, 1 << 22, engine=eng).run(p, abilities=True)[3]
    finally:
        if engine is None:
            eng.close()
    est, se = ab[:, 0], ab[:, 1]
    if method == "map":
        est, se = map_scores(p, enc.learner, enc.item, enc.y, enc.n_learners, start=est)
    return pd.DataFrame(
        {
            "learner_id": enc.learner_ids,
            "theta": est,
            "theta_se": se,
            "n_responses": enc.learner_counts,
        }
    )


def map_scores(
    p: Params,
    learner: np.ndarray,
    item: np.ndarray,
    y: np.ndarray,
    n_learners: int,
    start: np.ndarray | None = None,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mode of θ under N(0, 1) by vectorized Fisher scoring, with SE."""
    th = np.zeros(n_learners) if start is None else start.astype(float).copy()
    a, d = p.a[item], p.d[item]
    c = np.zeros_like(a) if p.g is None else expit(p.g[item])
    resp = _Responses(learner, a, d, c, y.astype(float), n_learners)
    for _ in range(max_iter):
        grad, info = _map_terms(resp, th)
        step = np.clip(grad / info, -1.0, 1.0)
        th = np.clip(th + step, -10.0, 10.0)
        if np.abs(step).max(initial=0.0) < 1e-10:
            break
    _, info = _map_terms(resp, th)
    return th, 1.0 / np.sqrt(info)


@dataclass(frozen=True)
class _Responses:
    """Per response: learner index, the item's a, d, c, and the 0/1 answer."""

    learner: np.ndarray
    a: np.ndarray
    d: np.ndarray
    c: np.ndarray
    y: np.ndarray
    n_learners: int


def _map_terms(r: _Responses, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Fisher information of the log posterior of θ per learner."""
    s = expit(r.a * t[r.learner] + r.d)
    prob = r.c + (1 - r.c) * s
    grad = np.bincount(r.learner, (r.y - prob) * r.a * s / prob, r.n_learners) - t
    info = (
        np.bincount(r.learner, (1 - r.c) * s * s * (1 - s) * r.a * r.a / prob, r.n_learners) + 1.0
    )
    return grad, info
