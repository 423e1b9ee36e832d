"""Static IRT as a next-answer model: item parameters from :func:`learnops.irt.fit`, the
learner's θ re-estimated (EAP, N(0, 1) prior) from their earlier answers before every answer.

Vectorised: the log-likelihood of every answer on the quadrature grid is summed cumulatively
within each learner, so the posterior before row *k* is the prior times the likelihood of rows
``0..k-1`` — the same posterior :func:`learnops.irt.score` computes on that prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from learnops.learner_models.base import Prediction, Sequences, item_index, prepare

if TYPE_CHECKING:
    from learnops.config import IrtConfig
    from learnops.irt import IrtFit

#: Rows per block of the cumulative posterior (bounds memory: rows × quadrature points).
BLOCK_ROWS = 50_000


class StaticIrt:
    """IRT with fixed item parameters and θ re-estimated by EAP from each learner's past."""

    name = "irt"

    def __init__(self, config: IrtConfig | None = None, seed: int = 0) -> None:
        from learnops.config import IrtConfig

        self.config = config or IrtConfig()
        self.seed = seed
        self.fit_: IrtFit | None = None
        self._memo: tuple[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def fit(self, responses: pd.DataFrame) -> StaticIrt:
        """Fit the item parameters (``irt.model``, priors and quadrature from the config)."""
        from learnops import irt
        from learnops.data.splits import learner_column

        table = responses[[learner_column(responses), "item_id", "correct"]]
        self.fit_ = irt.fit(table, self.config.model, config=self.config, seed=self.seed, se="none")
        self._memo = None
        return self

    @classmethod
    def from_fit(cls, fit: IrtFit, config: IrtConfig | None = None) -> StaticIrt:
        """A model around an existing fit (e.g. ``models/irt``)."""
        model = cls(config)
        model.fit_ = fit
        return model

    def _require(self) -> IrtFit:
        if self.fit_ is None:
            from learnops.errors import LearnopsError

            raise LearnopsError("the static IRT model is not fitted")
        return self.fit_

    def prefix_abilities(self, seq: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(θ EAP, posterior SD, item position) before every sorted row, from the earlier rows.

        The last result is remembered (keyed by the fit and the sequences' content), so that
        Best-LR reading the abilities of the table just predicted does not recompute them."""
        f = self._require()
        key = (id(f), _fingerprint(seq))
        memo = self._memo  # read once: another thread (a server's requests) may replace it
        if memo is not None and memo[0] == key:
            return memo[1]
        result = self._prefix_abilities(f, seq)
        self._memo = (key, result)
        return result

    def _prefix_abilities(
        self, f: IrtFit, seq: Sequences
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from learnops.irt.estep import quadrature
        from learnops.irt.scoring import item_params, probability

        params = item_params(f.items)
        items = item_index(seq, pd.Index(f.items["item_id"].astype(str)), "static IRT")
        nodes, logw = quadrature(self.config.quad_points, self.config.quad_range)
        theta = np.empty(seq.n)
        se = np.empty(seq.n)
        for lo, hi in _blocks(seq, BLOCK_ROWS):
            it = items[lo:hi]
            p = probability(params, np.repeat(it, nodes.size), np.tile(nodes, hi - lo))
            p = np.clip(p.reshape(hi - lo, nodes.size), 1e-12, 1 - 1e-12)
            y = seq.y[lo:hi, None].astype(float)
            ll = y * np.log(p) + (1 - y) * np.log1p(-p)
            before = np.cumsum(ll, axis=0) - ll  # likelihood of the block's earlier rows
            before -= before[seq.start[lo:hi] - lo]  # ... of the same learner only
            post = before + logw
            post -= post.max(axis=1, keepdims=True)
            w = np.exp(post)
            w /= w.sum(axis=1, keepdims=True)
            mean = w @ nodes
            theta[lo:hi] = mean
            se[lo:hi] = np.sqrt(np.maximum(w @ nodes**2 - mean**2, 0.0))
        return theta, se, items

    def predict(self, responses: pd.DataFrame) -> Prediction:
        """P(correct) at the EAP θ of the learner's earlier answers (θ = 0 before the first)."""
        from learnops.irt.scoring import item_params, probability

        seq = prepare(responses)
        theta, se, items = self.prefix_abilities(seq)
        p = probability(item_params(self._require().items), items, theta)
        return Prediction(seq.unsort(p), seq.unsort(theta), seq.unsort(se))


def _fingerprint(seq: Sequences) -> tuple:
    """A content key of the sorted learners, items and answers."""
    import hashlib

    h = hashlib.sha256()
    h.update(seq.learner.tobytes())
    h.update(seq.y.tobytes())
    h.update(seq.item.tobytes())
    h.update("\0".join(seq.item_names.tolist()).encode())
    return (seq.n, h.hexdigest())


def _blocks(seq: Sequences, size: int):
    """(lo, hi) row ranges of at least ``size`` rows (the last may be shorter) that never split
    a learner."""
    firsts = np.flatnonzero(seq.start == np.arange(seq.n))
    lo = 0
    while lo < seq.n:
        k = int(np.searchsorted(firsts, lo + size))
        hi = int(firsts[k]) if k < firsts.size else seq.n
        yield lo, hi
        lo = hi
