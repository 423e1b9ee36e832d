"""Elo rating with an uncertainty-adjusted step (Pelánek 2016, "Applications of the Elo rating
system in adaptive educational systems").

P(correct) = σ(θ_learner − b_item). After an answer y, θ += K(n_learner)·(y − P) and
b −= K(n_item)·(y − P), where n counts the earlier answers of that learner or item and
K(n) = alpha / (1 + beta·n): large steps while little is known, smaller ones later (beta = 0 is
classic Elo with a constant step, which keeps tracking a learner who improves).

Fitting runs through the training answers to estimate item difficulties (learners and items
start at 0). Answers are processed in rounds: round *k* holds every learner's *k*-th answer, so
the item updates of one round are applied together (a vectorised approximation of strict time
order that changes no learner's own order). Prediction freezes the item difficulties and runs
each learner's θ from 0 through their earlier answers only. ``alpha`` and ``beta`` are tuned on
validation learners (:func:`tune`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from learnops.learner_models.base import Prediction, Sequences, item_index, prepare


@dataclass
class Elo:
    """Elo with step K(n) = alpha / (1 + beta·n) for learners and items."""

    alpha: float = 0.8
    beta: float = 0.05
    name: str = "elo"
    difficulty: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    """Fitted item difficulty b, indexed by item id."""

    def step(self, n: np.ndarray) -> np.ndarray:
        """K(n) for earlier-answer counts ``n``."""
        return self.alpha / (1.0 + self.beta * n)

    def fit(self, responses: pd.DataFrame) -> Elo:
        """Estimate item difficulties by running Elo through ``responses`` (round by round)."""
        return self.fit_sequences(prepare(responses))

    def fit_sequences(self, seq: Sequences) -> Elo:
        """:meth:`fit` on responses already through :func:`prepare` (e.g. once for a grid)."""
        item_codes, item_ids = pd.factorize(seq.item_ids)
        b = np.zeros(len(item_ids))
        n_item = np.zeros(len(item_ids))
        theta = np.zeros(seq.learner_ids.size)
        for rows in _rounds(seq):
            lrn, it, y = seq.learner[rows], item_codes[rows], seq.y[rows]
            resid = y - expit(theta[lrn] - b[it])
            theta[lrn] += self.step(seq.n_prior[rows]) * resid
            k_item = self.step(n_item[it])
            np.add.at(b, it, -k_item * resid)
            np.add.at(n_item, it, 1.0)
        self.difficulty = pd.Series(b, index=pd.Index(item_ids, name="item_id"), name="difficulty")
        return self

    def run(self, seq: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(correct), θ before the answer, its SE) per sorted row, items frozen.

        The SE is the Laplace approximation 1/√(1 + Σ P(1 − P)) over the earlier answers (Elo
        itself keeps no uncertainty beyond the answer count)."""
        b = self.difficulty.to_numpy(float)[item_index(seq, pd.Index(self.difficulty.index), "Elo")]
        theta = np.zeros(seq.learner_ids.size)
        info = np.ones(seq.learner_ids.size)
        p = np.empty(seq.n)
        th = np.empty(seq.n)
        se = np.empty(seq.n)
        for rows in _rounds(seq):
            lrn = seq.learner[rows]
            th[rows] = theta[lrn]
            se[rows] = 1.0 / np.sqrt(info[lrn])
            pr = expit(theta[lrn] - b[rows])
            p[rows] = pr
            theta[lrn] += self.step(seq.n_prior[rows]) * (seq.y[rows] - pr)
            info[lrn] += pr * (1 - pr)
        return p, th, se

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) of every row from the learner's earlier rows (items frozen)."""
        seq = prepare(responses)
        p, th, se = self.run(seq)
        return Prediction(seq.unsort(p), seq.unsort(th), seq.unsort(se))


def _rounds(seq: Sequences):
    """Sorted-row indices of round k = 0, 1, …: every learner's k-th answer (one per learner)."""
    order = np.argsort(seq.n_prior, kind="stable")
    bounds = np.cumsum(np.bincount(seq.n_prior)) if seq.n else np.zeros(0, int)
    lo = 0
    for hi in bounds:
        yield order[lo:hi]
        lo = hi


def tune(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
) -> tuple[Elo, pd.DataFrame]:
    """Fit Elo on ``train`` for every (alpha, beta) of the grid and score its predictions of the
    ``valid`` learners (log-loss); returns the best model refitted on train + valid, and the grid
    (alpha, beta, log_loss)."""
    from learnops.evaluation.metrics import binary_log_loss

    seq_valid = prepare(valid)
    seq_train = prepare(train)  # once for the whole grid
    rows = []
    for a in alphas:
        for b in betas:
            model = Elo(alpha=a, beta=b).fit_sequences(seq_train)
            known = pd.Index(model.difficulty.index)
            keep = known.get_indexer(seq_valid.item_ids) >= 0
            p, _, _ = model.run(_subset(seq_valid, keep))
            rows.append({"alpha": a, "beta": b, "log_loss": binary_log_loss(seq_valid.y[keep], p)})
    del seq_train, seq_valid
    grid = pd.DataFrame(rows)
    best = grid.loc[grid["log_loss"].idxmin()]
    model = Elo(alpha=float(best["alpha"]), beta=float(best["beta"]))
    return model.fit(pd.concat([train, valid], ignore_index=True)), grid


def _subset(seq: Sequences, keep: np.ndarray) -> Sequences:
    """The sorted rows where ``keep`` is true (as their own sequences; counts recomputed)."""
    idx = np.flatnonzero(keep)
    learner = seq.learner[idx]
    n = idx.size
    first = np.r_[True, learner[1:] != learner[:-1]] if n else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, int)
    return Sequences(
        order=np.arange(n),
        learner=learner,
        learner_ids=seq.learner_ids,
        item_ids=seq.item_ids[idx],
        module=seq.module[idx],
        module_ids=seq.module_ids,
        y=seq.y[idx],
        start=start,
        n_prior=np.arange(n) - start,
    )
