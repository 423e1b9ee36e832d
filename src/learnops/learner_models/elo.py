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

from learnops.learner_models.base import Prediction, Sequences, prepare, unknown_items


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

    def fit_sequences(self, seq: Sequences, rounds: Rounds | None = None) -> Elo:
        """:meth:`fit` on responses already through :func:`prepare`; ``rounds``: their
        :class:`Rounds` when already made (:meth:`fit_rounds`)."""
        return self.fit_rounds(rounds if rounds is not None else Rounds.of(seq))

    def fit_rounds(self, r: Rounds) -> Elo:
        """:meth:`fit` on answers regrouped in :class:`Rounds` (made once, they serve a whole
        grid of steps)."""
        b = np.zeros(r.item_ids.size)
        n_item = np.zeros(r.item_ids.size)
        theta = np.zeros(r.n_learners)
        lo = 0
        for k, hi in enumerate(r.bounds.tolist()):
            lrn, it = r.learner[lo:hi], r.item[lo:hi]
            resid = r.y[lo:hi] - expit(theta[lrn] - b[it])
            theta[lrn] += self.step(k) * resid  # every learner's k-th answer: n = k
            k_item = self.step(n_item[it])
            np.add.at(b, it, -k_item * resid)  # row by row: the rounding of sequential steps
            n_item += np.bincount(it, minlength=n_item.size)  # exact counts
            lo = hi
        self.difficulty = pd.Series(
            b, index=pd.Index(r.item_ids, name="item_id"), name="difficulty"
        )
        return self

    def run(self, seq: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(correct), θ before the answer, its SE) per sorted row, items frozen.

        The SE is the Laplace approximation 1/√(1 + Σ P(1 − P)) over the earlier answers (Elo
        itself keeps no uncertainty beyond the answer count)."""
        p = np.empty(seq.n)
        th = np.empty(seq.n)
        se = np.empty(seq.n)
        self.replay(Rounds.of(seq, keep_rows=True), p=p, theta=th, se=se)
        return p, th, se

    def replay(
        self,
        rounds: Rounds,
        p: np.ndarray | None = None,
        theta: np.ndarray | None = None,
        se: np.ndarray | None = None,
        at: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run` on ``rounds``: every learner's θ from 0 through their answers, items
        frozen, writing P(correct), θ before each answer and its SE into those of ``p``,
        ``theta``, ``se`` given, at ``at[i]`` for the answer at position ``i`` of the rounds
        (default: its sorted row, ``rounds.rows``). Returns every learner's θ and information
        (1 + Σ P(1 − P)) after their last answer: what an answer after it would read."""
        b = self.difficulties(rounds.item_ids)
        dest = rounds.rows if at is None else at
        theta_l = np.zeros(rounds.n_learners)
        info = np.ones(rounds.n_learners)
        lo = 0
        for k, hi in enumerate(rounds.bounds.tolist()):
            lrn = rounds.learner[lo:hi]
            t = theta_l[lrn]
            if theta is not None:
                theta[dest[lo:hi]] = t
            if se is not None:
                se[dest[lo:hi]] = 1.0 / np.sqrt(info[lrn])
            pr = expit(t - b[rounds.item[lo:hi]])
            if p is not None:
                p[dest[lo:hi]] = pr
            theta_l[lrn] += self.step(k) * (rounds.y[lo:hi] - pr)  # n = k in round k
            info[lrn] += pr * (1 - pr)
            lo = hi
        return theta_l, info

    def difficulties(self, item_ids: np.ndarray) -> np.ndarray:
        """The fitted difficulty of each of ``item_ids``; items not seen in fitting are a clear
        error."""
        pos = pd.Index(self.difficulty.index).get_indexer(item_ids)
        if (pos < 0).any():
            raise unknown_items(item_ids[pos < 0], "Elo")
        return self.difficulty.to_numpy(float)[pos]

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) of every row from the learner's earlier rows (items frozen)."""
        seq = prepare(responses)
        p, th, se = self.run(seq)
        return Prediction(seq.unsort(p), seq.unsort(th), seq.unsort(se))


@dataclass(frozen=True)
class Rounds:
    """Sorted rows regrouped in rounds: round *k* holds every learner's *k*-th answer (the
    rows' sorted order within a round), as contiguous compact arrays: what each step of Elo
    reads, gathered once (about 13 bytes a row; 17 with ``rows``)."""

    learner: np.ndarray
    """Learner code per position (int32)."""
    item: np.ndarray
    """Item code per position (int32), an index into ``item_ids``."""
    item_ids: np.ndarray
    """The items in order of first appearance in the sorted rows (str)."""
    y: np.ndarray
    """0/1 answer per position (int8)."""
    bounds: np.ndarray
    """End of each round (round k: positions ``bounds[k-1]:bounds[k]``)."""
    n_learners: int
    rows: np.ndarray | None = None
    """The sorted row at each position (``keep_rows``), else None."""

    @classmethod
    def of(cls, seq: Sequences, keep: np.ndarray | None = None, keep_rows: bool = False) -> Rounds:
        """The rounds of ``seq``'s sorted rows (only those where ``keep`` is true: whole
        learners, whose answer counts stay the sorted sequences' ``n_prior``)."""
        rows = None if keep is None else np.flatnonzero(keep).astype(seq.order.dtype, copy=False)
        n_prior = seq.n_prior if rows is None else seq.n_prior[rows]
        # stable: each round keeps the sorted order (a narrow key sorts by radix)
        key = n_prior.astype(np.int16) if n_prior.size and n_prior.max() < 2**15 else n_prior
        order = np.argsort(key, kind="stable").astype(seq.order.dtype, copy=False)
        del key
        bounds = np.cumsum(np.bincount(n_prior)) if n_prior.size else np.zeros(0, np.int64)
        del n_prior
        # item codes in order of first appearance in the sorted rows (the difficulty's order)
        seen = pd.unique(seq.item if rows is None else seq.item[rows])
        if rows is not None:
            order = rows[order]
            del rows
        remap = np.full(seq.item_names.size, -1, dtype=np.int32)
        remap[seen] = np.arange(seen.size, dtype=np.int32)
        item = remap[seq.item[order]]
        del remap
        return cls(
            learner=seq.learner[order],
            item=item,
            item_ids=seq.item_names[seen],
            y=seq.y[order],
            bounds=bounds,
            n_learners=seq.learner_ids.size,
            rows=order if keep_rows else None,
        )


def _valid_subset(seq: Sequences, valid: np.ndarray, known: np.ndarray) -> Sequences:
    """The rows of the validation learners (``valid`` per sorted row) to items ``known``
    (bool per item code), as sequences of their own (answers to other items left out of the
    learners' histories)."""
    return seq.subset(valid & known[seq.item])


def _grid(
    rounds: Rounds,
    valid: Sequences,
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
) -> pd.DataFrame:
    """(alpha, beta, log_loss) of Elo fitted on the training answers (their ``rounds``) for
    every step of the grid, scored on ``valid`` (answers to items seen in training only)."""
    from learnops.evaluation.metrics import binary_log_loss

    rows = []
    y = valid.y.astype(float)
    valid_rounds = Rounds.of(valid, keep_rows=True)
    p = np.empty(valid.n)
    for a in alphas:
        for b in betas:
            model = Elo(alpha=a, beta=b).fit_rounds(rounds)
            model.replay(valid_rounds, p=p)
            rows.append({"alpha": a, "beta": b, "log_loss": binary_log_loss(y, p)})
    return pd.DataFrame(rows)


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
    rounds = Rounds.of(seq_train)
    known = pd.Index(rounds.item_ids).get_indexer(seq_valid.item_names) >= 0
    valid_kept = _valid_subset(seq_valid, np.ones(seq_valid.n, bool), known)
    del seq_valid
    grid = _grid(rounds, valid_kept, alphas, betas)
    del seq_train, rounds, valid_kept
    return best(grid).fit(pd.concat([train, valid], ignore_index=True)), grid


def tune_sequences(
    seq: Sequences,
    valid: np.ndarray,
    alphas: tuple[float, ...],
    betas: tuple[float, ...],
    rounds: Rounds | None = None,
) -> tuple[Elo, pd.DataFrame]:
    """:func:`tune` on prepared answers: ``valid`` marks (per sorted row) the validation
    learners, whose rows are all validation rows; the others are the training rows. The best
    model is refitted on all of ``seq`` (``rounds``: its :class:`Rounds`, when already made).
    The same numbers as :func:`tune` on the two sides as tables, in a fraction of the memory:
    no table is copied, and both sides are rows of ``seq``."""
    grid = grid_sequences(seq, valid, alphas, betas)
    return best(grid).fit_sequences(seq, rounds), grid


def grid_sequences(
    seq: Sequences, valid: np.ndarray, alphas: tuple[float, ...], betas: tuple[float, ...]
) -> pd.DataFrame:
    """The grid (alpha, beta, log_loss) of :func:`tune_sequences`: Elo fitted on the training
    learners' rows of ``seq`` for every step, scored on the validation learners' rows
    (``valid``) to items seen in training."""
    train_rounds = Rounds.of(seq, ~valid)
    known = np.zeros(seq.item_names.size, bool)
    known[pd.Index(seq.item_names).get_indexer(train_rounds.item_ids)] = True
    valid_kept = _valid_subset(seq, valid, known)
    return _grid(train_rounds, valid_kept, alphas, betas)


def best(grid: pd.DataFrame) -> Elo:
    """The (unfitted) model of the grid's lowest log-loss (the first on ties)."""
    row = grid.loc[grid["log_loss"].idxmin()]
    return Elo(alpha=float(row["alpha"]), beta=float(row["beta"]))
