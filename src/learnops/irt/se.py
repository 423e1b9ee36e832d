"""Standard errors of the item parameters.

``exact``: inverse of the numerical Hessian of the marginal log posterior (central differences of
the Fisher-identity gradient), for problems small enough to afford it. ``louis-block``: Louis'
observed information per item (cross-item terms dropped; the 1PL's common slope row is exact),
accumulated in the same E-step pass that yields the EAP abilities. ``transformed_se`` maps the
(a, d[, g]) covariance to SEs of discrimination, difficulty and guessing (delta method).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from learnops.irt.estep import Chunk, EStep
from learnops.irt.mstep import full_gradient, item_terms
from learnops.irt.params import Params, Priors, add_step, column, pack, unpack

if TYPE_CHECKING:
    pass

#: Exact (full numerical Hessian) standard errors when n_params × n_responses is below this;
#: the 1PL gets a larger budget because its common slope couples every item.
EXACT_SE_BUDGET = 5e6
EXACT_SE_BUDGET_1PL = 1e7


def choose_method(se: str, model: str, n_items: int, n_responses: int) -> str:
    """``se`` with ``auto`` resolved: ``exact`` when n_params × n_responses fits the budget,
    else ``louis-block``."""
    if se != "auto":
        return se
    budget = EXACT_SE_BUDGET_1PL if model == "1pl" else EXACT_SE_BUDGET
    n_par = 1 + n_items if model == "1pl" else (3 if model == "3pl" else 2) * n_items
    return "exact" if n_par * n_responses <= budget else "louis-block"


# ---------------------------------------------------------------- exact (numerical Hessian)


def exact_cov(p: Params, es: EStep, priors: Priors, model: str, warnings: list[str]) -> np.ndarray:
    """Covariance blocks (items, k, k) of (a, d[, g]) from the numerical Hessian of the marginal
    log posterior (central differences of the analytic gradient); appends a warning if the
    information matrix is singular."""
    n_items = len(p.a)
    info = -_marginal_hessian(pack(p, model), es, priors, model, n_items)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
        warnings.append("information matrix is singular: standard errors are unreliable")
    k = 3 if model == "3pl" else 2
    blocks = np.empty((n_items, k, k))
    for i in range(n_items):
        idx = [0, 1 + i] if model == "1pl" else [i + j * n_items for j in range(k)]
        blocks[i] = cov[np.ix_(idx, idx)]
    return blocks


def _marginal_gradient(
    vec: np.ndarray, es: EStep, priors: Priors, model: str, n_items: int
) -> np.ndarray:
    """Gradient of the marginal log posterior at packed parameters ``vec`` (one E-step)."""
    pp = unpack(vec, model, n_items)
    _, r, w, _ = es.run(pp)
    return full_gradient(pp, r, w, es.theta, priors, model)


def _marginal_hessian(
    v: np.ndarray, es: EStep, priors: Priors, model: str, n_items: int
) -> np.ndarray:
    """Symmetrized central-difference Hessian of the marginal log posterior at ``v``."""
    h_mat = np.empty((len(v), len(v)))
    for j in range(len(v)):
        h = 1e-5 * max(1.0, abs(v[j]))
        vp, vm = v.copy(), v.copy()
        vp[j] += h
        vm[j] -= h
        h_mat[:, j] = (
            _marginal_gradient(vp, es, priors, model, n_items)
            - _marginal_gradient(vm, es, priors, model, n_items)
        ) / (2 * h)
    return (h_mat + h_mat.T) / 2


# ---------------------------------------------------------------- Louis, per item block


def _louis_g(p: Params, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P per item and node, and G_q = dP/dparam / (P(1−P)) as (items, k, nodes)."""
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    s = expit(z)
    if p.g is None:
        prob = s
        gvec = np.stack([np.broadcast_to(theta, s.shape), np.ones_like(s)], axis=1)
    else:
        c = expit(p.g)[:, None]
        prob = c + (1 - c) * s
        gvec = np.stack([theta * s / prob, s / prob, np.broadcast_to(c / prob, s.shape)], axis=1)
    return prob, gvec


@dataclass
class LouisAccumulator:
    """E-step callback accumulating ``b_mat`` = Σ_j m_j m_j^T per item, m_j = E_post[(y − P) G]
    over the learners j who answered the item."""

    p: Params
    theta: np.ndarray
    n_items: int
    b_mat: np.ndarray = field(init=False)
    k: int = field(init=False)
    prob: np.ndarray = field(init=False)
    gvec: np.ndarray = field(init=False)
    vecs: np.ndarray = field(init=False)
    flat: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.k = 2 if self.p.g is None else 3
        self.prob, self.gvec = _louis_g(self.p, self.theta)
        # the G rows, then the P·G rows: (I, 2k, Q)
        self.vecs = np.concatenate([self.gvec, self.gvec * self.prob[:, None, :]], axis=1)
        self.flat = self.vecs.transpose(1, 0, 2).reshape(2 * self.k * self.n_items, -1)
        self.b_mat = np.zeros((self.n_items, self.k, self.k))

    def __call__(self, ch: Chunk, post: np.ndarray) -> None:
        if ch.dense:
            self._dense(ch, post)
        else:
            self._sparse(ch, post)

    def _dense(self, ch: Chunk, post: np.ndarray) -> None:
        k, n_items, n_vec = self.k, self.n_items, 2 * self.k
        flat = self.flat  # (2k·I, Q)
        flat_p = flat[k * n_items :]  # the E_post[P G] rows
        correct, seen = ch.correct_seen()
        step = max(1, (1 << 21) // (n_vec * n_items))
        for lo in range(0, ch.x.shape[0], step):
            pb = post[lo : lo + step]
            if self.p.g is None:  # E_post[G] is the same for every item
                eg = pb @ self.gvec[0].T
                dp = (pb @ flat_p.T).reshape(len(pb), k, n_items)
                m = correct[lo : lo + step, None, :] * eg[:, :, None]
            else:
                dots = (pb @ flat.T).reshape(len(pb), n_vec, n_items)
                m = correct[lo : lo + step, None, :] * dots[:, :k]
                dp = dots[:, k:]
            if seen is None:
                m -= dp
            else:
                m -= seen[lo : lo + step, None, :] * dp
            for u in range(k):
                for v in range(u, k):
                    add = np.einsum("ri,ri->i", m[:, u], m[:, v])
                    self.b_mat[:, u, v] += add
                    if v != u:
                        self.b_mat[:, v, u] += add

    def _sparse(self, ch: Chunk, post: np.ndarray) -> None:
        xc, n_items, n_vec = ch.x, self.n_items, 2 * self.k
        rows = np.repeat(np.arange(xc.shape[0]), np.diff(xc.indptr))
        cols = xc.indices
        # 1PL/2PL: G = (θ, 1) is the same for every item, so E_post[G] is per learner and only
        # E_post[P G] needs the item's probabilities
        post_g = post @ self.gvec[0].T if self.p.g is None else None
        for lo in range(0, len(cols), 100_000):
            sl = slice(lo, lo + 100_000)
            item = cols[sl] % n_items
            y = (cols[sl] < n_items).astype(float)
            prow = post[rows[sl]]
            if post_g is not None:
                pg = post_g[rows[sl]]
                prow *= self.prob[item]
                pgp = prow @ self.gvec[0].T
                self._add_outer(item, y[:, None] * pg - pgp)
                continue
            dots = np.empty((len(item), n_vec))
            for c in range(n_vec):
                dots[:, c] = np.einsum("nq,nq->n", prow, self.vecs[item, c])
            self._add_outer(item, y[:, None] * dots[:, : self.k] - dots[:, self.k :])

    def _add_outer(self, item: np.ndarray, m: np.ndarray) -> None:
        """b_mat[item] += m m^T, one row of m per response."""
        for u in range(self.k):
            for v in range(u, self.k):
                add = np.bincount(item, weights=m[:, u] * m[:, v], minlength=self.n_items)
                self.b_mat[:, u, v] += add
                if v != u:
                    self.b_mat[:, v, u] += add


def louis_block_cov(
    p: Params,
    es: EStep,
    r: np.ndarray,
    w: np.ndarray,
    priors: Priors,
    model: str,
    pre: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-item observed information by Louis' formula, ignoring cross-item terms.

    Returns the covariance blocks and the EAP abilities (computed in the same E-step pass).
    ``pre`` = (Σ m m^T blocks, abilities) from an E-step at ``p`` with a ``LouisAccumulator``
    callback, which saves that pass.
    """
    theta = es.theta
    hc = _complete_data_hessian(p, r, w, theta, priors, include_a=model != "1pl")
    prob, gvec = _louis_g(p, theta)
    # E_post[s s^T] summed over learners, from the expected counts
    wgt = r * (1 - prob) ** 2 + w * prob**2
    a_mat = np.einsum("iq,ikq,ilq->ikl", wgt, gvec, gvec)
    if pre is None:
        acc = LouisAccumulator(p, theta, len(p.a))
        abilities = es.run(p, abilities=True, callback=acc)[3]
        b_mat = acc.b_mat
    else:
        b_mat, abilities = pre
    info = -hc - a_mat + b_mat
    if model == "1pl":
        return _cov_1pl(p, es, priors, model, info), abilities
    cov = np.full(info.shape, np.nan)
    for i in range(len(p.a)):
        with contextlib.suppress(np.linalg.LinAlgError):
            cov[i] = np.linalg.inv(info[i])
    return cov, abilities


def _complete_data_hessian(
    p: Params, r: np.ndarray, w: np.ndarray, theta: np.ndarray, priors: Priors, include_a: bool
) -> np.ndarray:
    """Per-item Hessian (items, k, k) of the complete-data log posterior (numerical; items are
    independent given the counts)."""
    n_items, k = len(p.a), 2 if p.g is None else 3
    hc = np.empty((n_items, k, k))
    for j in range(k):
        step = np.zeros((n_items, k))
        hj = 1e-5 * np.maximum(1.0, np.abs(column(p, j)))
        step[:, j] = hj
        ones = np.ones(n_items)
        gp = item_terms(add_step(p, step, ones), r, w, theta, priors, include_a_prior=include_a)[1]
        gm = item_terms(add_step(p, -step, ones), r, w, theta, priors, include_a_prior=include_a)[1]
        hc[:, :, j] = (gp - gm) / (2 * hj[:, None])
    return (hc + hc.transpose(0, 2, 1)) / 2


def _cov_1pl(p: Params, es: EStep, priors: Priors, model: str, info: np.ndarray) -> np.ndarray:
    """1PL covariance blocks: the common slope's row and column exact (finite differences of the
    marginal gradient); only the difficulty-difficulty block is approximated (per item, Louis)."""
    n_items = len(p.a)
    v = pack(p, model)
    h = 1e-5 * max(1.0, abs(v[0]))
    cols = []
    for sign in (1.0, -1.0):
        vv = v.copy()
        vv[0] += sign * h
        cols.append(_marginal_gradient(vv, es, priors, model, n_items))
    col = -(cols[0] - cols[1]) / (2 * h)
    jaa = col[0]
    info[:, 0, 1] = col[1:]
    jad, jdd = info[:, 0, 1], info[:, 1, 1]
    schur = jaa - (jad**2 / jdd).sum()
    var_a = 1.0 / schur
    cov = np.empty((n_items, 2, 2))
    cov[:, 0, 0] = var_a
    cov[:, 0, 1] = cov[:, 1, 0] = -(jad / jdd) * var_a
    cov[:, 1, 1] = 1.0 / jdd + (jad / jdd) ** 2 * var_a
    return cov


# ---------------------------------------------------------------- reported scale


def transformed_se(p: Params, cov: np.ndarray) -> dict[str, np.ndarray]:
    """Delta-method standard errors of discrimination a, difficulty b = −d/a, guessing c."""
    a, d = p.a, p.d
    grad_b = np.stack([d / a**2, -1.0 / a], axis=1)
    var_b = np.einsum("ik,ikl,il->i", grad_b, cov[:, :2, :2], grad_b)
    out = {"a": _sqrt_or_nan(cov[:, 0, 0]), "b": _sqrt_or_nan(var_b)}
    if p.g is not None:
        c = expit(p.g)
        out["c"] = c * (1 - c) * _sqrt_or_nan(cov[:, 2, 2])
    return out


def _sqrt_or_nan(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v) & (v > 0)
    out[ok] = np.sqrt(v[ok])
    return out
