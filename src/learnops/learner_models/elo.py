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

from learnops.learner_models.base import Prediction, Sequences, item_values, prepare


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
        return self._fit(seq, seq.rounds, _first_seen(seq.item, seq.item_names.size))

    def _fit(self, seq: Sequences, rounds: tuple[np.ndarray, np.ndarray], seen: np.ndarray) -> Elo:
        """:meth:`fit_sequences` on the rows of ``rounds`` (:attr:`Sequences.rounds`, or those
        of some learners: :func:`_select`); ``seen``: their item codes in order of first
        appearance (the difficulty's index)."""
        # b and the counts by item code (no per-row recoding): each item's steps come in the
        # same order whatever its code; the difficulty is indexed in order of first appearance
        b = np.zeros(seq.item_names.size)
        n_item = np.zeros(seq.item_names.size)
        theta = np.zeros(seq.learner_ids.size)
        for rows in _rounds(rounds):
            lrn, it, y = seq.learner[rows], seq.item[rows], seq.y[rows]
            resid = y - expit(theta[lrn] - b[it])
            theta[lrn] += self.step(seq.n_prior[rows]) * resid
            k_item = self.step(n_item[it])
            np.add.at(b, it, -k_item * resid)  # in row order: the rounding of sequential steps
            n_item += np.bincount(it, minlength=n_item.size)  # whole counts: exact in any order
        item_ids = pd.Index(seq.item_names[seen], name="item_id")
        self.difficulty = pd.Series(b[seen], index=item_ids, name="difficulty")
        return self

    def run(self, seq: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(correct), θ before the answer, its SE) per sorted row, items frozen.

        The SE is the Laplace approximation 1/√(1 + Σ P(1 − P)) over the earlier answers (Elo
        itself keeps no uncertainty beyond the answer count)."""
        p = np.empty(seq.n)
        th = np.empty(seq.n)
        se = np.empty(seq.n)
        self.replay(seq, th, se, p=p)
        return p, th, se

    def replay(
        self,
        seq: Sequences,
        th: np.ndarray | None,
        se: np.ndarray | None,
        p: np.ndarray | None = None,
        rounds: tuple[np.ndarray, np.ndarray] | None = None,
        start: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run every learner's θ through their rows (items frozen), writing each sorted row's
        θ before the answer and its SE (and P(correct)) in ``th``, ``se`` and ``p`` (None: not
        written) at the row's own position, or with ``start`` (per learner code) at
        ``start[learner] + n_prior``: the learner's k-th row at ``start + k``; returns (θ, the
        information 1 + Σ P(1 − P)) of every learner after all their rows. ``rounds``: only the
        rows of these rounds (default :attr:`Sequences.rounds`: all). The numbers of
        :meth:`run`, which calls it."""
        d = item_values(seq, self.difficulty, "Elo")  # per item code: no per-row array
        theta = np.zeros(seq.learner_ids.size)
        info = np.ones(seq.learner_ids.size)
        for rows in _rounds(seq.rounds if rounds is None else rounds):
            lrn = seq.learner[rows]
            dest = rows if start is None else start[lrn] + seq.n_prior[rows]
            if th is not None:
                th[dest] = theta[lrn]
            if se is not None:
                se[dest] = 1.0 / np.sqrt(info[lrn])
            pr = expit(theta[lrn] - d[seq.item[rows]])
            if p is not None:
                p[dest] = pr
            theta[lrn] += self.step(seq.n_prior[rows]) * (seq.y[rows] - pr)
            info[lrn] += pr * (1 - pr)
        return theta, info

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) of every row from the learner's earlier rows (items frozen)."""
        seq = prepare(responses)
        p, th, se = self.run(seq)
        return Prediction(seq.unsort(p), seq.unsort(th), seq.unsort(se))


def _rounds(rounds: tuple[np.ndarray, np.ndarray]):
    """Sorted-row indices of round k = 0, 1, …: every learner's k-th answer (one per learner),
    from :attr:`Sequences.rounds` (or :func:`_select`)."""
    order, bounds = rounds
    lo = 0
    for hi in bounds:
        yield order[lo:hi]
        lo = hi


def _select(seq: Sequences, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:attr:`Sequences.rounds` of the sorted rows where ``keep`` (whole learners) is true: the
    rounds a sequences of those rows alone has (its n_prior are the same), in the same order."""
    order, _ = seq.rounds
    bounds = np.cumsum(np.bincount(seq.n_prior[keep]))  # the rows of each round, kept
    return order[keep[order]], bounds


def _first_seen(codes: np.ndarray, size: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The distinct values of ``codes`` (0..size-1; only where ``keep``) in order of first
    appearance (``pd.unique``), a slice at a time (its hash table sized by the slice)."""
    seen = np.zeros(size, dtype=bool)
    out = []
    step = 1 << 20
    for lo in range(0, codes.size, step):
        part = (
            codes[lo : lo + step] if keep is None else codes[lo : lo + step][keep[lo : lo + step]]
        )
        new = pd.unique(part)
        new = new[~seen[new]]
        seen[new] = True
        out.append(new)
    return np.concatenate(out) if out else np.zeros(0, dtype=codes.dtype)


def tune(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
) -> tuple[Elo, pd.DataFrame]:
    """Fit Elo on ``train`` for every (alpha, beta) of the grid and score its predictions of the
    ``valid`` learners (log-loss); returns the best model refitted on train + valid, and the grid
    (alpha, beta, log_loss)."""
    seq_valid = prepare(valid)
    seq_train = prepare(train)  # once for the whole grid
    grid = _grid(seq_train, seq_valid, alphas, betas)
    del seq_train, seq_valid
    return _best(grid).fit(pd.concat([train, valid], ignore_index=True)), grid


def tune_sequences(
    seq: Sequences, valid: np.ndarray, alphas: tuple[float, ...], betas: tuple[float, ...]
) -> tuple[Elo, pd.DataFrame]:
    """:func:`tune` on one prepared table: ``valid`` tells, per sorted row, whether its learner
    is a validation learner (whole learners on each side). The same grid and model as
    :func:`tune` on the two sides as tables (a side's sorted rows are the table's sorted rows
    of its learners, in the same order), without a copy of the rows: each side is read through
    its rounds (4 bytes a row)."""
    from learnops.evaluation.metrics import binary_log_loss

    train = _select(seq, ~valid)
    seen = _first_seen(seq.item, seq.item_names.size, ~valid)  # training items, as they come
    known = np.zeros(seq.item_names.size, dtype=bool)
    known[seen] = True
    if not known[seq.item[valid]].all():  # a validation item unseen in training: scored apart
        grid = _grid(_subset(seq, ~valid), _subset(seq, valid), alphas, betas)
        return _best(grid).fit_sequences(seq), grid
    scored = _select(seq, valid)
    # a validation learner's first place in the validation rows (their k-th row: start + k)
    start = np.zeros(seq.learner_ids.size, dtype=seq.n_prior.dtype)
    np.cumsum(np.bincount(seq.learner[valid], minlength=start.size)[:-1], out=start[1:])
    y = seq.y[valid].astype(float)
    p = np.empty(y.size)
    rows = []
    for a in alphas:
        for b in betas:
            model = Elo(alpha=a, beta=b)._fit(seq, train, seen)
            model.replay(seq, None, None, p=p, rounds=scored, start=start)
            rows.append({"alpha": a, "beta": b, "log_loss": binary_log_loss(y, p)})
    del train, scored, start, y, p
    grid = pd.DataFrame(rows)
    return _best(grid).fit_sequences(seq), grid


def _grid(
    seq_train: Sequences,
    seq_valid: Sequences,
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
) -> pd.DataFrame:
    """(alpha, beta, log_loss on ``seq_valid``) of Elo fitted on ``seq_train``, per grid point."""
    from learnops.evaluation.metrics import binary_log_loss

    rows = []
    for a in alphas:
        for b in betas:
            model = Elo(alpha=a, beta=b).fit_sequences(seq_train)
            known = pd.Index(model.difficulty.index)
            keep = (known.get_indexer(seq_valid.item_names) >= 0)[seq_valid.item]
            scored = seq_valid if keep.all() else _subset(seq_valid, keep)
            p, _, _ = model.run(scored)
            y = scored.y.astype(float)
            rows.append({"alpha": a, "beta": b, "log_loss": binary_log_loss(y, p)})
    return pd.DataFrame(rows)


def _best(grid: pd.DataFrame) -> Elo:
    """The (unfitted) Elo of the grid point with the lowest log-loss."""
    best = grid.loc[grid["log_loss"].idxmin()]
    return Elo(alpha=float(best["alpha"]), beta=float(best["beta"]))


def _subset(seq: Sequences, keep: np.ndarray) -> Sequences:
    """The sorted rows where ``keep`` is true (as their own sequences; counts recomputed)."""
    idx = np.flatnonzero(keep).astype(seq.order.dtype, copy=False)
    learner = seq.learner[idx]
    n = idx.size
    first = np.r_[True, learner[1:] != learner[:-1]] if n else np.zeros(0, bool)
    pos = np.arange(n, dtype=seq.n_prior.dtype)
    start = np.maximum.accumulate(np.where(first, pos, 0)) if n else pos
    return Sequences(
        order=pos.copy(),
        learner=learner,
        learner_ids=seq.learner_ids,
        item=seq.item[idx],
        item_names=seq.item_names,
        module=seq.module[idx],
        module_ids=seq.module_ids,
        y=seq.y[idx],
        n_prior=pos - start,
    )
