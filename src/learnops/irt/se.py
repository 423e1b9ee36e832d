"""Standard errors of the item parameters.

``exact``: inverse of the numerical Hessian of the marginal log posterior (central differences of
the Fisher-identity gradient), for problems small enough to afford it. ``louis-exact``: the same
observed information by Louis' formula with each learner's complete-data score summed over all
their responses (repeated answers included) and all cross-item blocks, accumulated in one E-step
pass (exact on the quadrature grid; any number of responses, up to ``LOUIS_EXACT_MAX_PARAMS``
item parameters). ``louis-block``: Louis'
observed information per item (cross-item terms dropped; the 1PL's common slope row is exact),
accumulated in the same E-step pass that yields the EAP abilities; it treats every response as
a separate learner-item score and so understates SEs when learners answer an item repeatedly.
``transformed_se`` maps the (a, d[, g]) covariance to SEs of discrimination, difficulty and
guessing (delta method).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from learnops.irt.estep import Chunk, EStep
from learnops.irt.mstep import MapFn, full_gradient, item_terms, serial_map
from learnops.irt.params import Params, Priors, add_step, column, pack, unpack

if TYPE_CHECKING:
    pass

#: Exact (full numerical Hessian) standard errors when n_params × n_responses is below this;
#: the 1PL gets a larger budget because its common slope couples every item.
EXACT_SE_BUDGET = 5e6
EXACT_SE_BUDGET_1PL = 1e7


#: Largest estimated work (flops of the per-learner Gram matrices, Σ_i (k·m_i)²·Q·2) for which
#: ``auto`` uses ``louis-exact``; beyond it (e.g. long dense 3PL tests) it uses ``louis-block``.
LOUIS_EXACT_MAX_FLOPS = 2e11


def louis_exact_flops(model: str, per_learner: np.ndarray, n_items: int, n_nodes: int) -> float:
    """Estimated work of ``louis-exact`` from the answers per learner (repeats counted, so an
    upper bound); 0 when every learner has one answer per item in a 1PL/2PL (taken to be the
    complete design, which has a closed form: ``ExactLouisAccumulator._dense_all_seen``)."""
    return louis_flops_from_hist(model, np.bincount(per_learner), n_items, n_nodes)


def louis_flops_from_hist(model: str, hist: np.ndarray, n_items: int, n_nodes: int) -> float:
    """``louis_exact_flops`` from the histogram of answers per learner (``hist[m]`` learners
    answered m times: what a partitioned dataset's driver holds)."""
    k = 3 if model == "3pl" else 2
    m = np.arange(len(hist), dtype=float)
    if model != "3pl" and hist[np.arange(len(hist)) != n_items].sum() == 0:
        return 0.0
    return float((m * m * hist).sum()) * k * k * n_nodes * 2


def choose_method(se: str, model: str, n_items: int, n_responses: int, flops: float = 0.0) -> str:
    """``se`` with ``auto`` resolved: ``exact`` when n_params × n_responses fits the budget,
    else ``louis-exact`` (per-learner Louis information, same values) when the (k·I)² matrix
    fits ``LOUIS_EXACT_MAX_PARAMS`` and its estimated work ``flops`` (``louis_exact_flops``)
    ``LOUIS_EXACT_MAX_FLOPS``, else ``louis-block``."""
    if se != "auto":
        return se
    budget = EXACT_SE_BUDGET_1PL if model == "1pl" else EXACT_SE_BUDGET
    n_par = 1 + n_items if model == "1pl" else (3 if model == "3pl" else 2) * n_items
    if n_par * n_responses <= budget:
        return "exact"
    n_full = (3 if model == "3pl" else 2) * n_items
    if n_full <= LOUIS_EXACT_MAX_PARAMS and flops <= LOUIS_EXACT_MAX_FLOPS:
        return "louis-exact"
    return "louis-block"


# ---------------------------------------------------------------- exact (numerical Hessian)


def exact_cov(p: Params, es: EStep, priors: Priors, model: str, warnings: list[str]) -> np.ndarray:
    """Covariance blocks (items, k, k) of (a, d[, g]) from the numerical Hessian of the marginal
    log posterior (central differences of the analytic gradient); appends a warning if the
    information matrix is singular."""
    n_items = len(p.a)
    info = -_marginal_hessian(pack(p, model), es, priors, model, n_items)
    cov, singular = inverse_one_thread(info)
    if singular:
        warnings.append("information matrix is singular: standard errors are unreliable")
    k = 3 if model == "3pl" else 2
    blocks = np.empty((n_items, k, k))
    for i in range(n_items):
        idx = [0, 1 + i] if model == "1pl" else [i + j * n_items for j in range(k)]
        blocks[i] = cov[np.ix_(idx, idx)]
    return blocks


def inverse_one_thread(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """a⁻¹ (LU), or its pseudo-inverse and True if a is singular; on one BLAS/LAPACK thread,
    so that the numbers do not depend on the machine's core count (threaded LAPACK's last bits
    do)."""
    from learnops.irt.parallel import one_thread_each

    with one_thread_each():
        try:
            return np.linalg.inv(a), False
        except np.linalg.LinAlgError:
            return np.linalg.pinv(a), True


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

    def fresh(self) -> LouisAccumulator:
        """An empty accumulator for the same parameters (one per lane of shards)."""
        return LouisAccumulator(self.p, self.theta, self.n_items)

    def merge(self, other: LouisAccumulator) -> None:
        """Add another accumulator's sums to this one."""
        self.b_mat += other.b_mat

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


# ---------------------------------------------------------------- Louis, exact (per learner)

#: Largest number of (a, d[, g]) parameters for which the exact Louis information is
#: accumulated as a dense matrix (its inverse costs O(n_par³)); above it ``auto`` falls back to
#: ``louis-block``.
LOUIS_EXACT_MAX_PARAMS = 8_000
#: Elements of the per-learner score tensor processed at once: its 2 MB of float64 stay in a
#: core's cache (L2) through the batch's two products. 10M responses, one exact Louis pass on
#: 1 / 2 threads: 2^18 6.7–6.9 / 3.3–3.6 s, 2^19 6.8–7.0 / 3.6–3.7 s, 2^20 6.6–6.9 / 4.0–4.3 s
#: (two 8 MB batches at once leave the caches), 2^17 7.5 / 3.7 s. It never depends on the
#: workers (torch's batched products may round with the batch's shape; the 10M benchmark's
#: numbers are the same at 2^18 and 2^20).
_BATCH_ELEMENTS = 1 << 18


class ExactLouisAccumulator:
    """E-step callback accumulating Σ_i Cov_post[S_i] over learners i, S_i = the complete-data
    score of learner i summed over *all* their responses (repeats included), with its cross-item
    blocks: Louis' missing information, exact on the quadrature grid.

    Per learner, responses are merged per item into (correct count c, answer count n); the
    score of item j at node q is (c − n P_j(q)) G_j(q), and Cov_i = Σ_q w_iq (S_i(q) − S̄_i)
    (S_i(q) − S̄_i)ᵀ only involves the items learner i answered. Learners with the same number of
    items are batched: one small Gram matrix per learner (a batched float64 GEMM), added into
    the item-pair blocks j ≤ j' (one flat scatter-add). Fully dense chunks without repeats
    (1PL/2PL) use an equivalent closed form in big matrix products.

    Single-threaded by design: parallel runs give each lane of shards its own accumulator
    (``fresh``) and add them up in a fixed order (``merge``), so the sums do not depend on the
    number of workers.
    """

    def __init__(self, p: Params, theta: np.ndarray, n_items: int) -> None:
        self.p, self.theta, self.n_items = p, theta, n_items
        self.k = 2 if p.g is None else 3
        self.pairs: Any = None  # (I(I+1)/2, k²) float64 tensor (pairs j ≤ j'), on first use
        self.dense_part: np.ndarray | None = None
        self._tables: dict[str, Any] | None = None

    def fresh(self) -> ExactLouisAccumulator:
        """An empty accumulator for the same parameters (one per lane of shards)."""
        return ExactLouisAccumulator(self.p, self.theta, self.n_items)

    def merge(self, other: ExactLouisAccumulator) -> None:
        """Add another accumulator's sums to this one."""
        if other.pairs is not None:
            if self.pairs is None:
                self.pairs = other.pairs
            else:
                self.pairs += other.pairs
        if other.dense_part is not None:
            self.dense_part = (
                other.dense_part if self.dense_part is None else self.dense_part + other.dense_part
            )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tables"] = None  # rebuilt where it is used (torch views of numpy tables)
        return state

    def _t(self) -> dict[str, Any]:
        if self._tables is None:
            import torch

            prob, gvec = _louis_g(self.p, self.theta)
            self._tables = {
                "torch": torch,
                "prob": torch.from_numpy(prob),
                "gvec": torch.from_numpy(np.ascontiguousarray(gvec)),
                "theta": torch.from_numpy(self.theta),
                "prob_np": prob,
                "triu": {},
                # row j of the packed upper triangle starts at j·I − j(j−1)/2
                "row_start": torch.from_numpy(_packed_row_starts(self.n_items)),
            }
        if self.pairs is None:
            torch = self._tables["torch"]
            shape = (self.n_items * (self.n_items + 1) // 2, self.k * self.k)
            self.pairs = torch.zeros(shape, dtype=torch.float64)
        return self._tables

    def __call__(self, ch: Chunk, post: np.ndarray) -> None:
        post = np.asarray(post, dtype=np.float64)
        if ch.dense and self.p.g is None:
            correct, seen = ch.correct_seen()
            if seen is None:
                self._dense_all_seen(correct, post)
                return
        # small batched kernels: one thread avoids OpenMP overhead (and its collapse when the
        # cores are shared), measured 3-10x faster than two threads on 2 cores; parallel runs
        # already pin one thread per worker (``learnops.irt.parallel``)
        torch = self._t()["torch"]
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            self._per_learner(ch.x, post)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)

    # -- generic path: per learner, only the items they answered
    def _per_learner(self, x: Any, post: np.ndarray) -> None:
        import scipy.sparse as sp

        from learnops.irt import kernels

        tables = self._t()
        n_items, n_rows = self.n_items, x.shape[0]
        cols = x.indices
        # n + 65536·c per (learner, item) after summing duplicates (n < 65536 answers)
        code = np.where(cols < n_items, 65537.0, 1.0)
        # its own indptr: sum_duplicates rewrites it in place (x's would no longer match x)
        agg = sp.csr_matrix((code, cols % n_items, x.indptr.copy()), shape=(n_rows, n_items))
        agg.sum_duplicates()
        c_cnt = np.floor(agg.data / 65536.0)
        n_cnt = agg.data - 65536.0 * c_cnt
        m_per = np.diff(agg.indptr)
        for m in np.unique(m_per):
            if m == 0:
                continue
            learners = np.flatnonzero(m_per == m)
            step = max(1, _BATCH_ELEMENTS // int(self.k * m * len(self.theta)))
            pidx = agg.indptr[learners][:, None] + np.arange(m)
            jj, cc, nn = agg.indices[pidx], c_cnt[pidx], n_cnt[pidx]
            if self.p.g is None:  # the batches' loop in one TorchScript call
                torch = tables["torch"]
                kernels.scripted(kernels.louis_common)(
                    self.pairs, tables["prob"], tables["theta"], tables["row_start"],
                    *(torch.from_numpy(v) for v in (jj, cc, nn, post, learners)),
                    step, *self._pair_index(tables, m),
                )  # fmt: skip
                continue
            for lo in range(0, len(learners), step):
                rows = slice(lo, lo + step)
                self._gram(tables, jj[rows], cc[rows], nn[rows], post[learners[rows]])

    def _pair_index(self, tables: dict[str, Any], m: int) -> tuple[Any, Any, Any]:
        """Item pairs j ≤ j' of m sorted items (row, column positions) and, in the 2m × 2m
        Gram matrix of the (a-rows; d-rows), the flat positions of their [aa, ad, da, dd]."""
        cache = tables["triu"]
        if m not in cache:
            torch = tables["torch"]
            iu, ju = np.triu_indices(m)
            flat = np.stack(
                [(s * m + iu) * 2 * m + (t * m + ju) for s in (0, 1) for t in (0, 1)], axis=1
            )
            cache[m] = (torch.from_numpy(iu), torch.from_numpy(ju), torch.from_numpy(flat.ravel()))
        return cache[m]

    def _gram(
        self, tables: dict[str, Any], jj: np.ndarray, cc: np.ndarray, nn: np.ndarray, w: np.ndarray
    ) -> None:
        """3PL (item-specific G): centered scores, (b, m·k, Q) Gram matrices; the k×k blocks of
        item pairs j ≤ j' are added."""
        from learnops.irt import kernels

        torch = tables["torch"]
        b, m = jj.shape
        k = self.k
        jt = torch.from_numpy(jj)
        prob = tables["prob"][jt]  # (b, m, Q)
        wt = torch.from_numpy(w)
        u = torch.from_numpy(cc)[:, :, None] - torch.from_numpy(nn)[:, :, None] * prob
        v = u[:, :, None, :] * tables["gvec"][jt]
        vbar = (v * wt[:, None, None, :]).sum(-1, keepdim=True)
        v -= vbar
        v *= wt.sqrt()[:, None, None, :]
        xt = v.reshape(b, m * k, -1)
        blocks = torch.bmm(xt, xt.transpose(1, 2)).view(b, m, k, m, k).permute(0, 1, 3, 2, 4)
        iu, ju, _ = self._pair_index(tables, m)
        kernels.add_pairs(
            self.pairs, kernels.pair_positions(tables["row_start"], jt, iu, ju), blocks[:, iu, ju]
        )

    # -- dense chunk, every item answered once, 1PL/2PL: closed form in matrix products
    def _dense_all_seen(self, correct: np.ndarray, w: np.ndarray) -> None:
        """Σ_i Cov_post[S_i] with u_ij(q) = y_ij − P_j(q) and G = (θ, 1):
        E[u_j u_j' θ^t] = Σ_i μ_i^t y_ij y_ij' − (R θ^t) Pᵀ − P (R θ^t)ᵀ + P diag(W θ^t) Pᵀ,
        R = Yᵀ W, μ^t = W θ^t, W = Σ_i w_i; minus Σ_i S̄_i S̄_iᵀ."""
        theta = self.theta
        prob = self._t()["prob_np"]
        y = np.asarray(correct, dtype=np.float64)
        r = y.T @ w  # (I, Q)
        wt = w.sum(axis=0)
        mom = []
        for t in range(3):
            th = theta**t
            mu = w @ th
            rt = r * th
            e = y.T @ (y * mu[:, None]) - rt @ prob.T
            e -= prob @ rt.T
            e += (prob * (wt * th)) @ prob.T
            mom.append(e)
        mean_a = y * (w @ theta)[:, None] - w @ (prob * theta).T
        mean_d = y - w @ prob.T
        means = np.hstack([mean_a, mean_d])
        cov = np.block([[mom[2], mom[1]], [mom[1], mom[0]]]) - means.T @ means
        self.dense_part = cov if self.dense_part is None else self.dense_part + cov

    def matrix(self, keep: bool = False) -> np.ndarray:
        """Σ_i Cov_post[S_i] as a (k·I)² matrix in *item-interleaved* order (row j·k + s is
        parameter s of item j). Only the upper triangle is filled (the blocks of item pairs
        j ≤ j'; the diagonal blocks in full): what an upper Cholesky factorization reads.
        The packed sums are released unless ``keep`` (to build the matrix again)."""
        k, n_items = self.k, self.n_items
        torch = self._t()["torch"]
        # torch's allocator, not numpy's: numpy asks for transparent huge pages on large
        # arrays, whose first touches cost more than the copy on some virtual machines
        out = torch.zeros((n_items, k, n_items, k), dtype=torch.float64).numpy()
        packed = self.pairs.view(-1, k, k).numpy()
        for j, start in enumerate(_packed_row_starts(n_items).tolist()):  # row j: pairs (j, j…)
            out[j, :, j:, :] = packed[start : start + n_items - j].transpose(1, 0, 2)
        del packed
        out = out.reshape(k * n_items, k * n_items)
        if not keep:
            self.pairs = None
        if self.dense_part is not None:  # full symmetric, in pack order (a block, d block)
            dense = self.dense_part.reshape(k, n_items, k, n_items).transpose(1, 0, 3, 2)
            out += np.triu(dense.reshape(k * n_items, k * n_items))
        return out


def _packed_row_starts(n: int) -> np.ndarray:
    """Start of row j in a row-major packed upper triangle of an n × n matrix."""
    j = np.arange(n, dtype=np.int64)
    return j * n - j * (j - 1) // 2


def louis_exact_cov(
    p: Params,
    es: Any,
    r: np.ndarray,
    w: np.ndarray,
    priors: Priors,
    model: str,
    warnings: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Exact observed information by Louis' formula, per learner (cross-item blocks included):
    I = E[−H_complete | y] − Σ_i Cov[S_i | y], priors' Hessian included; inverted by Cholesky.

    Returns the covariance blocks (items, k, k) and the EAP abilities (same E-step pass).
    """
    n_items = len(p.a)
    acc = ExactLouisAccumulator(p, es.theta, n_items)
    abilities = es.run(p, abilities=True, callback=acc)[3]
    hc = _complete_data_hessian(p, r, w, es.theta, priors, include_a=model != "1pl")
    k = hc.shape[1]
    diag = np.arange(n_items)

    def information(keep: bool) -> np.ndarray:
        info = acc.matrix(keep=keep)
        np.negative(info, out=info)
        blocks = info.reshape(n_items, k, n_items, k)
        for s in range(k):
            for t in range(k):
                blocks[diag, s, diag, t] -= hc[:, s, t]
        return info

    if model == "1pl":  # common slope: a_j = a for all j (Jᵀ I J), plus its prior once
        full = _symmetric_from_upper(information(keep=False), n_items, k)
        info = np.empty((1 + n_items, 1 + n_items))
        info[1:, 1:] = full[:, 1, :, 1]
        col = full[:, 0].sum(axis=0)  # (I, k): Σ_j info[(j, a), (j', t)]
        info[0, 1:] = info[1:, 0] = col[:, 1]
        info[0, 0] = col[:, 0].sum() + _prior_a_curvature(p, priors)
        del full
        return _inverse_blocks_1pl(info, n_items, warnings), abilities
    map_fn = getattr(getattr(es, "engine", None), "map_local", None)
    # factorized in place; built again from the packed sums only if that fails
    cov = _inverse_diag_blocks(
        information(keep=True), n_items, k, warnings, map_fn, rebuild=lambda: information(False)
    )
    return cov, abilities


def _symmetric_from_upper(upper: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """The full symmetric (I, k, I, k) matrix from its upper triangle (item-interleaved)."""
    full = np.triu(upper)
    full += np.triu(upper, 1).T
    return full.reshape(n_items, k, n_items, k)


def _prior_a_curvature(p: Params, priors: Priors) -> float:
    """−d²/da² of the 1PL common slope's log prior (0 without a prior)."""
    if priors.a is None:
        return 0.0
    from learnops.irt.mstep import _prior_a

    a = float(p.a[0])
    h = 1e-5 * max(1.0, abs(a))
    gp = _prior_a(np.array([a + h]), priors.a)[1][0]
    gm = _prior_a(np.array([a - h]), priors.a)[1][0]
    return -(gp - gm) / (2 * h)


#: Edge of the tiles (in parameters, rounded down to a multiple of k) of the blocked Cholesky
#: factorization and inverse in ``_inverse_diag_blocks``.
TILE = 512


def _inverse_diag_blocks(
    info: np.ndarray,
    n_items: int,
    k: int,
    warnings: list[str],
    map_fn: MapFn | None = None,
    rebuild: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """Per-item (k, k) diagonal blocks of info⁻¹, info item-interleaved with its upper triangle
    filled: Cholesky info = L Lᵀ by tiles, then the tiles of L⁻¹ a column at a time, each
    column's item blocks of L⁻ᵀL⁻¹ summed as it is made (``_tiled_inverse_blocks``); LU (or a
    pseudo-inverse) if info is not positive definite.

    The tiles' products and solves run through ``map_fn`` (e.g. the engine's threads), each on
    one BLAS thread, in an order fixed by the matrix alone: the same numbers for any number of
    threads (a threaded LAPACK factorization is not: its last bits change with the threads).
    The factor overwrites ``info`` (no fresh (k·I)² buffer: first touches cost more than the
    factorization on some virtual machines); ``rebuild`` returns a new copy of the matrix for
    the fallback (without it, ``info`` is copied first).
    """
    from learnops.irt.parallel import one_thread_each

    if rebuild is None:
        kept = info.copy()
        rebuild = lambda: kept  # noqa: E731
    with one_thread_each():
        # info is C-ordered with the upper triangle filled: its transpose (a view) is the
        # lower triangle in Fortran order, which LAPACK and BLAS read in place
        blocks = _tiled_inverse_blocks(info.T, n_items, k, map_fn or serial_map)
    if blocks is not None:
        return blocks
    del info
    warnings.append("information matrix is not positive definite: standard errors are unreliable")
    full = _symmetric_from_upper(rebuild(), n_items, k).reshape(k * n_items, -1)
    cov = inverse_one_thread(full)[0]
    diag = np.arange(n_items)
    return np.ascontiguousarray(cov.reshape(n_items, k, n_items, k)[diag, :, diag, :])


def _tiled_inverse_blocks(a: np.ndarray, n_items: int, k: int, map_fn: MapFn) -> np.ndarray | None:
    """Item blocks of a⁻¹ from the lower triangle of ``a`` (overwritten by its Cholesky factor
    L), or None if ``a`` is not positive definite.

    Right-looking tiled Cholesky (per tile column c: factor the diagonal tile and invert that
    factor, L_ic = A_ic L_cc⁻ᵀ below it, update the trailing tiles), then per tile column j of
    X = L⁻¹ (independent columns): X_jj = L_jj⁻¹ and X_ij = −L_ii⁻¹ Σ_{j≤m<i} L_im X_mj down the
    column, each tile's column pairs of XᵀX summed as it is made (X is never stored). Every
    tile operation is one single-threaded BLAS/LAPACK call (triangular products where a factor
    is triangular) with inputs fixed by the step, so the numbers do not depend on ``map_fn``.
    """
    from scipy.linalg import blas, lapack

    nb = max(k, TILE // k * k)  # whole items per tile
    n = n_items * k
    edges = [*range(0, n, nb), n]
    tiles = [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    t = len(tiles)
    inv_diag: list[np.ndarray] = []  # L_cc⁻¹ (lower, Fortran order)

    def tile(i: int, j: int) -> np.ndarray:
        return a[tiles[i], tiles[j]]

    for c in range(t):
        diag_tile = tile(c, c)
        factor, status = lapack.dpotrf(diag_tile, lower=1, clean=1)
        if status != 0:
            return None
        diag_tile[...] = factor
        inv_diag.append(lapack.dtrtri(factor, lower=1)[0])

        def below(i: int, c: int = c) -> None:
            target = tile(i, c)
            target[...] = blas.dtrmm(1.0, inv_diag[c], target, side=1, lower=1, trans_a=1)

        map_fn(below, list(range(c + 1, t)))

        def update(ij: tuple[int, int], c: int = c) -> None:
            i, j = ij
            target = tile(i, j)
            if i == j:  # the lower triangle is enough
                target -= blas.dsyrk(1.0, tile(i, c), lower=1)
            else:
                target -= tile(i, c) @ tile(j, c).T

        map_fn(update, [(i, j) for i in range(c + 1, t) for j in range(c + 1, i + 1)])

    def column(j: int) -> np.ndarray:
        x = inv_diag[j]
        xs = [x]  # the tiles X_jj, X_(j+1)j, ... of column j of L⁻¹ made so far
        per_item = x.reshape(len(x), -1, k)
        out = np.einsum("rms,rmu->msu", per_item, per_item)
        for i in range(j + 1, t):
            acc = blas.dtrmm(1.0, inv_diag[j], tile(i, j), side=1, lower=1)
            for m in range(j + 1, i):
                acc += tile(i, m) @ xs[m - j]
            x = blas.dtrmm(-1.0, inv_diag[i], acc, side=0, lower=1, overwrite_b=1)
            xs.append(x)
            per_item = x.reshape(len(x), -1, k)
            out += np.einsum("rms,rmu->msu", per_item, per_item)
        return out

    return np.concatenate(map_fn(column, list(range(t))))


def _inverse_blocks_1pl(info: np.ndarray, n_items: int, warnings: list[str]) -> np.ndarray:
    """1PL (common slope, then the difficulties' intercepts): the (2, 2) blocks of info⁻¹ for
    (a, d_j) per item (Cholesky, then L⁻¹; LU or a pseudo-inverse if singular), on one LAPACK
    thread (the same numbers on any machine)."""
    from scipy.linalg import lapack

    from learnops.irt.parallel import one_thread_each

    idx = np.stack([np.zeros(n_items, dtype=int), 1 + np.arange(n_items)], axis=1)
    with one_thread_each():
        chol, status = lapack.dpotrf(info, lower=1, overwrite_a=0, clean=1)
        if status == 0:
            linv, status = lapack.dtrtri(chol, lower=1, overwrite_c=1)
    if status != 0:  # not positive definite (a weakly identified item): LU, as ``exact`` does
        warnings.append(
            "information matrix is not positive definite: standard errors are unreliable"
        )
        cov = inverse_one_thread(info)[0]
        return np.stack([cov[np.ix_(ix, ix)] for ix in idx])
    # info⁻¹ = L⁻ᵀ L⁻¹: block (ix, ix) = L⁻¹[:, ix]ᵀ L⁻¹[:, ix]
    cols = linv[:, idx.reshape(-1)].reshape(len(linv), n_items, -1)
    return np.einsum("rik,ril->ikl", cols, cols)


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
