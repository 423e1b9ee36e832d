"""Marginal maximum likelihood (Bock–Aitkin EM) for 1PL/2PL/3PL models on sparse responses.

Internal parameterization per item: slope ``a``, intercept ``d`` and, for the 3PL, the logit ``g``
of the guessing parameter: P(correct | θ) = c + (1 − c) σ(aθ + d), c = σ(g), difficulty b = −d/a.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit

# Parameter bounds keep separated items (all correct / all wrong) finite.
A_MIN_POSITIVE = 1e-2
A_MAX = 20.0
D_MAX = 40.0
G_MIN, G_MAX = -15.0, 5.0
MAX_STEP = 1.0
#: Exact (full numerical Hessian) standard errors when n_params × n_responses is below this;
#: the 1PL gets a larger budget because its common slope couples every item.
EXACT_SE_BUDGET = 5e6
EXACT_SE_BUDGET_1PL = 1e7


@dataclass(frozen=True)
class Priors:
    """Prior hyper-parameters: lognormal(a), normal(b), beta(c); None disables one."""

    a: tuple[float, float] | None = None
    b: tuple[float, float] | None = None
    c: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if v is not None else None) for k, v in vars(self).items()}


@dataclass
class Encoded:
    """Responses coded as integer learner/item indices (sorted unique ids)."""

    learner_ids: np.ndarray
    item_ids: np.ndarray
    learner: np.ndarray
    item: np.ndarray
    y: np.ndarray

    @property
    def n_learners(self) -> int:
        return len(self.learner_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_responses(self) -> int:
        return len(self.y)


def quadrature(n_points: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Equally spaced nodes on [−bound, bound] and log-weights of N(0, 1), normalized."""
    theta = np.linspace(-bound, bound, n_points)
    logw = -0.5 * theta**2
    logw -= np.logaddexp.reduce(logw)
    return theta, logw


@dataclass
class Params:
    """Item parameters in the internal (a, d, g) form; g is None for 1PL/2PL."""

    a: np.ndarray
    d: np.ndarray
    g: np.ndarray | None = None

    def copy(self) -> Params:
        return Params(self.a.copy(), self.d.copy(), None if self.g is None else self.g.copy())

    @property
    def c(self) -> np.ndarray:
        return np.zeros_like(self.a) if self.g is None else expit(self.g)

    @property
    def b(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -self.d / self.a


def item_logprobs(p: Params, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log P and log(1 − P) per item and node (items × nodes)."""
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    # log σ(±z) = min(±z, 0) − log(1 + e^−|z|): one exp and one log1p for both tables
    t = np.log1p(np.exp(-np.abs(z)))
    lz = np.minimum(z, 0.0)
    lz -= t
    np.negative(z, out=z)
    lmz = np.minimum(z, 0.0, out=z)
    lmz -= t
    if p.g is None:
        return lz, lmz
    logc = log_expit(p.g)[:, None]
    log1mc = log_expit(-p.g)[:, None]
    return np.logaddexp(logc, log1mc + lz), log1mc + lmz


def design_matrix(enc: Encoded) -> sp.csr_matrix:
    """Sparse learners × (2·items): column i marks correct answers, column I+i wrong ones.

    One stored entry per response (repeated responses are kept, not merged).
    """
    n_items = enc.n_items
    index_dtype = np.int32 if 2 * n_items < 2**31 and len(enc.y) < 2**31 else np.int64
    cols = enc.item.astype(index_dtype)
    cols += (enc.y == 0).astype(index_dtype) * index_dtype(n_items)
    already_sorted = len(enc.learner) < 2 or bool((enc.learner[1:] >= enc.learner[:-1]).all())
    if not already_sorted:
        cols = cols[np.argsort(enc.learner, kind="stable")]
    indptr = np.zeros(enc.n_learners + 1, dtype=index_dtype)
    np.cumsum(np.bincount(enc.learner, minlength=enc.n_learners), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(enc.n_learners, 2 * n_items))


def _row_block(x: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows start:stop of a CSR matrix, sharing its data and index arrays (no copy)."""
    stop = min(stop, x.shape[0])
    lo, hi = x.indptr[start], x.indptr[stop]
    return sp.csr_matrix(
        (x.data[lo:hi], x.indices[lo:hi], x.indptr[start : stop + 1] - lo),
        shape=(stop - start, x.shape[1]),
    )


#: Chunks denser than this use dense BLAS products (built per chunk, never for all learners).
DENSE_FRACTION = 1 / 24
#: Sparse problems with at least this many responses use torch float32 kernels if available.
TORCH_MIN_RESPONSES = 2_000_000
#: EM runs in float32 ("fast" E-steps) until convergence, then polishes in float64, on problems
#: with at least this many responses.
FAST_MIN_RESPONSES = 1_000_000
#: Dense chunks are kept in memory between E-steps when all of them fit in this many bytes.
DENSE_CACHE_BYTES = 256 * 2**20


@dataclass
class Chunk:
    """A block of consecutive learners with its responses."""

    start: int
    x: sp.csr_matrix
    dense: bool
    torch_idx: Any = None
    cached: tuple[np.ndarray, np.ndarray | None] | None = None
    cached32: np.ndarray | None = None
    totals: np.ndarray | None = None

    def dense_block(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Dense (rows × 2I) indicator block: correct answers, then wrong answers."""
        return self.x[lo:hi].toarray()

    def correct_seen(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Dense correct-count and seen-count blocks (rows × I); seen is None if all ones."""
        if self.cached is not None:
            return self.cached
        xd = self.x.toarray()
        n_items = xd.shape[1] // 2
        correct = np.ascontiguousarray(xd[:, :n_items])
        seen = correct + xd[:, n_items:]
        return correct, (None if (seen == 1).all() else seen)

    def correct_totals(self) -> np.ndarray:
        """Correct answers per item in this chunk."""
        if self.totals is None:
            self.totals = self.correct_seen()[0].sum(axis=0)
        return self.totals

    def correct32(self) -> np.ndarray:
        """Float32 copy of the correct-count block (exact: small integers), kept if cached."""
        if self.cached32 is not None:
            return self.cached32
        c32 = self.correct_seen()[0].astype(np.float32)
        if self.cached is not None:
            self.cached32 = c32
        return c32

    @property
    def n_rows(self) -> int:
        return self.x.shape[0]


class EStep:
    """Posterior over quadrature nodes for every learner, computed chunk by chunk.

    Per chunk, L[j, q] = Σ_responses log P or log(1 − P) is a sparse (or, for dense chunks, a
    small dense BLAS) product; the expected counts are the transposed product with the posterior.
    """

    def __init__(
        self,
        x: sp.csr_matrix,
        theta: np.ndarray,
        logw: np.ndarray,
        chunk_cells: int = 1 << 21,
        backend: str = "auto",
    ):
        self.theta = theta
        self.logw = logw
        self.n_items = x.shape[1] // 2
        self.n_learners = x.shape[0]
        n_cols = x.shape[1]
        self.chunks: list[Chunk] = []
        dense_overall = x.nnz >= DENSE_FRACTION * x.shape[0] * n_cols
        rows = max(
            1, chunk_cells // (max(len(theta), n_cols // 8) if dense_overall else len(theta))
        )
        for start in range(0, x.shape[0], rows):
            xc = _row_block(x, start, start + rows)
            self.chunks.append(Chunk(start, xc, xc.nnz >= DENSE_FRACTION * xc.shape[0] * n_cols))
        sparse_nnz = sum(c.x.nnz for c in self.chunks if not c.dense)
        use_torch = backend == "torch" or (
            backend == "auto" and sparse_nnz >= TORCH_MIN_RESPONSES and _torch_ok()
        )
        dense_cells = sum(c.x.shape[0] * n_cols for c in self.chunks if c.dense)
        cache_dense = dense_cells * 8 <= DENSE_CACHE_BYTES
        for ch in self.chunks:
            if ch.dense and cache_dense:
                ch.cached = ch.correct_seen()
            elif use_torch and not ch.dense:
                ch.torch_idx = _torch_index(ch.x)
        self.backend = "torch" if any(c.torch_idx is not None for c in self.chunks) else "numpy"
        self.fast_ok = x.nnz >= FAST_MIN_RESPONSES

    def run(
        self, p: Params, *, abilities: bool = False, callback: Any = None, fast: bool = False
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
        """Return (marginal loglik, r counts, wrong counts, [eap, sd] or None).

        ``fast`` (ignored when abilities or a callback are requested) computes posteriors and
        counts in float32; EM uses it on large problems before polishing in the default mode.
        """
        fast = fast and not abilities and callback is None
        lp, l1p = item_logprobs(p, self.theta)
        m = np.vstack([lp, l1p])
        m32 = None
        counts = np.zeros_like(m)
        loglik = 0.0
        ab = np.empty((self.n_learners, 2)) if abilities else None
        for ch in self.chunks:
            if ch.torch_idx is not None:
                if m32 is None:
                    import torch

                    m32 = torch.from_numpy(m.astype(np.float32))
                chunk_fn = _torch_chunk_fast if fast else _torch_chunk
                ll_c, counts_c, post = chunk_fn(ch, m32, self.logw)
                loglik += ll_c
                counts += counts_c
            elif ch.dense:
                ll_c, r_c, n_c, post = _dense_chunk(ch, p, lp, l1p, self.theta, self.logw, fast)
                loglik += ll_c
                counts[: self.n_items] += r_c
                counts[self.n_items :] += n_c - r_c
            else:
                post = ch.x @ m
                post += self.logw
                mx = post.max(axis=1, keepdims=True)
                post -= mx
                np.exp(post, out=post)
                tot = post.sum(axis=1, keepdims=True)
                post /= tot
                loglik += float(mx.sum() + np.log(tot).sum())
                counts += ch.x.T @ post
            if ab is not None:
                eap = post @ self.theta
                var = post @ (self.theta**2) - eap**2
                ab[ch.start : ch.start + len(eap), 0] = eap
                ab[ch.start : ch.start + len(eap), 1] = np.sqrt(np.maximum(var, 0.0))
            if callback is not None:
                callback(ch, post)
        return loglik, counts[: self.n_items], counts[self.n_items :], ab


def _centered_rank2(
    slope: np.ndarray, theta: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Float32 θ_q·s_j + c_q − max_q(θ_q·s_j + c_q), or None if c is not concave on the grid.

    For a concave c the maximizing node is monotone in s: it is found by a binary search over
    the breakpoints, and the centered values are gathered from (node × node) difference tables,
    so the large terms cancel exactly (in float64) before rounding to float32.
    """
    brk = -np.diff(c) / np.diff(theta)
    if not (np.diff(brk) >= 0).all():
        return None
    qs = np.searchsorted(brk, slope)
    mx = theta[qs] * slope + c[qs]
    dth = (theta[None, :] - theta[:, None]).astype(np.float32)
    dc = (c[None, :] - c[:, None]).astype(np.float32)
    post = np.take(dth, qs, axis=0)
    post *= slope.astype(np.float32)[:, None]
    post += np.take(dc, qs, axis=0)
    return post, mx


def _dense_chunk(
    ch: Chunk,
    p: Params,
    lp: np.ndarray,
    l1p: np.ndarray,
    theta: np.ndarray,
    logw: np.ndarray,
    fast: bool,
) -> tuple[float, np.ndarray, np.ndarray | np.floating, np.ndarray]:
    """Log-likelihood, correct and seen counts and posterior of a dense chunk.

    For the 1PL/2PL, log P − log(1 − P) = aθ + d, so the learner × node log-likelihood is
    θ·(correct @ a) + correct @ d + seen @ log(1 − P): a rank-2 product plus the wrong-answer
    term (a single row when every learner saw every item).
    """
    correct, seen = ch.correct_seen()
    base = seen @ l1p if seen is not None else l1p.sum(axis=0)
    extra = 0.0
    centered = None
    if p.g is None:
        # Σ_j correct_j·d (the per-learner term cancels in the posterior)
        extra = float(ch.correct_totals() @ p.d)
        if fast:
            slope = (ch.correct32() @ p.a.astype(np.float32)).astype(np.float64)
        else:
            slope = correct @ p.a
        centered = _centered_rank2(slope, theta, base + logw) if fast and seen is None else None
        if centered is not None:
            post, mx = centered
        else:
            post = np.multiply.outer(slope, theta)
            post += base + logw
    elif fast:
        post = ch.correct32() @ (lp - l1p).astype(np.float32)
        post += (base + logw).astype(np.float32)
    else:
        post = correct @ (lp - l1p)
        post += base + logw
    if centered is None:  # subtract the row maximum (in float64 before rounding to float32)
        mx = post.max(axis=1)
        post -= mx[:, None]
        if fast:
            post = post.astype(np.float32, copy=False)
    np.exp(post, out=post)
    tot = post.sum(axis=1, keepdims=True)
    post /= tot
    loglik = extra + float(mx.sum(dtype=np.float64) + np.log(tot).sum(dtype=np.float64))
    if fast:
        r_c = (ch.correct32().T @ post).astype(np.float64)
        n_c = (
            (seen.T.astype(np.float32) @ post).astype(np.float64)
            if seen is not None
            else post.sum(axis=0, dtype=np.float64)
        )
    else:
        r_c = correct.T @ post
        n_c = seen.T @ post if seen is not None else post.sum(axis=0)
    return loglik, r_c, n_c, post


def _torch_ok() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return True


def _torch_index(xc: sp.csr_matrix) -> tuple[Any, Any, Any, Any]:
    import torch

    xt = xc.T.tocsr()
    return (
        torch.from_numpy(xc.indices.astype(np.int64)),
        torch.from_numpy(xc.indptr[:-1].astype(np.int64)),
        torch.from_numpy(xt.indices.astype(np.int64)),
        torch.from_numpy(xt.indptr[:-1].astype(np.int64)),
    )


def _torch_chunk(ch: Chunk, m32: Any, logw: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Float32 embedding-bag sums (multi-threaded, SIMD) for large sparse chunks."""
    import torch
    from torch.nn.functional import embedding_bag

    idx, off, idx_t, off_t = ch.torch_idx
    post = embedding_bag(idx, m32, off, mode="sum").numpy().astype(np.float64)
    post += logw
    mx = post.max(axis=1, keepdims=True)
    post -= mx
    np.exp(post, out=post)
    tot = post.sum(axis=1, keepdims=True)
    post /= tot
    counts = embedding_bag(idx_t, torch.from_numpy(post.astype(np.float32)), off_t, mode="sum")
    return float(mx.sum() + np.log(tot).sum()), counts.numpy().astype(np.float64), post


def _torch_chunk_fast(ch: Chunk, m32: Any, logw: np.ndarray) -> tuple[float, np.ndarray, None]:
    """Like ``_torch_chunk`` with the posterior normalization in (multi-threaded) float32."""
    import torch
    from torch.nn.functional import embedding_bag

    idx, off, idx_t, off_t = ch.torch_idx
    post = embedding_bag(idx, m32, off, mode="sum")
    post += torch.from_numpy(logw.astype(np.float32))
    lse = torch.logsumexp(post, dim=1, keepdim=True)
    post -= lse
    torch.exp_(post)
    counts = embedding_bag(idx_t, post, off_t, mode="sum")
    return float(lse.sum(dtype=torch.float64)), counts.numpy().astype(np.float64), None


# ---------------------------------------------------------------- per-item M-step terms


def _prior_terms(
    p: Params, pri: Priors, include_a: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log prior, its gradient and a positive curvature approximation per item."""
    n, k = len(p.a), 2 if p.g is None else 3
    val, grad, info = np.zeros(n), np.zeros((n, k)), np.zeros((n, k, k))
    if pri.a is not None and include_a:
        val_a, grad_a, info_a = _prior_a(p.a, pri.a)
        val += val_a
        grad[:, 0] += grad_a
        info[:, 0, 0] += info_a
    if pri.b is not None:
        mu, sd = pri.b
        b = -p.d / p.a
        e = b - mu
        val += -(e**2) / (2 * sd**2)
        grad[:, 0] += e * b / (sd**2 * p.a)
        grad[:, 1] += e / (sd**2 * p.a)
        jac = np.stack([-b / p.a, -1.0 / p.a], axis=1)
        info[:, :2, :2] += jac[:, :, None] * jac[:, None, :] / sd**2
    if pri.c is not None and p.g is not None:
        al, be = pri.c
        c = expit(p.g)
        val += (al - 1) * log_expit(p.g) + (be - 1) * log_expit(-p.g)
        grad[:, 2] += (al - 1) * (1 - c) - (be - 1) * c
        info[:, 2, 2] += max(al + be - 2, 0.0) * c * (1 - c)
    return val, grad, info


def _prior_a(a: np.ndarray, prior: tuple[float, float]) -> tuple[Any, Any, Any]:
    mu, sd = prior
    la = np.log(a)
    u = la - mu
    return -la - u**2 / (2 * sd**2), -(1 + u / sd**2) / a, 1.0 / (sd**2 * a**2)


def item_terms(
    p: Params,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    *,
    include_a_prior: bool = True,
    need: str = "all",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per item: expected complete-data log posterior, its gradient and Fisher information."""
    lp, l1p = item_logprobs(p, theta)
    obj = np.einsum("iq,iq->i", r, lp) + np.einsum("iq,iq->i", w, l1p)
    pv, pg, pinfo = _prior_terms(p, pri, include_a_prior)
    obj = obj + pv
    if need == "obj":
        return obj, None, None
    z = np.multiply.outer(p.a, theta) + p.d[:, None]
    s = expit(z)
    n = r + w
    k = 2 if p.g is None else 3
    grad = np.empty((len(p.a), k))
    info = np.empty((len(p.a), k, k))
    if p.g is None:
        gz = r - n * s
        izz = n * s * (1 - s)
    else:
        c = expit(p.g)[:, None]
        prob = np.exp(lp)
        resid = r - n * prob
        gz = resid * s / prob
        gg = resid * c / prob
        izz = n * (1 - c) * s * s * (1 - s) / prob
        izg = n * (1 - c) * s * (1 - s) * c / prob
        igg = n * (1 - s) * c * c * (1 - c) / prob
        grad[:, 2] = gg.sum(1)
        info[:, 0, 2] = info[:, 2, 0] = izg @ theta
        info[:, 1, 2] = info[:, 2, 1] = izg.sum(1)
        info[:, 2, 2] = igg.sum(1)
    grad[:, 0] = gz @ theta
    grad[:, 1] = gz.sum(1)
    info[:, 0, 0] = izz @ (theta**2)
    info[:, 0, 1] = info[:, 1, 0] = izz @ theta
    info[:, 1, 1] = izz.sum(1)
    return obj, grad + pg, info + pinfo


def _clip(p: Params, pri: Priors) -> Params:
    a_min = A_MIN_POSITIVE if pri.a is not None else -A_MAX
    a = np.clip(p.a, a_min, A_MAX)
    if pri.a is None:  # keep |a| away from 0 so that b = −d/a stays finite
        tiny = np.abs(a) < 1e-4
        a[tiny] = np.where(a[tiny] < 0, -1e-4, 1e-4)
    g = None if p.g is None else np.clip(p.g, G_MIN, G_MAX)
    return Params(a, np.clip(p.d, -D_MAX, D_MAX), g)


def _add(p: Params, step: np.ndarray, t: np.ndarray) -> Params:
    st = step * t[:, None]
    g = None if p.g is None else p.g + st[:, 2]
    return Params(p.a + st[:, 0], p.d + st[:, 1], g)


def mstep(
    p: Params,
    r: np.ndarray,
    w: np.ndarray,
    theta: np.ndarray,
    pri: Priors,
    model: str,
    max_inner: int = 25,
    tol: float = 1e-10,
) -> Params:
    """Maximize the expected complete-data log posterior per item (Fisher scoring + halving)."""
    if model == "1pl":
        return _mstep_1pl(p, r, w, theta, pri, max_inner, tol)
    k = 2 if p.g is None else 3
    ridge = 1e-9 * np.eye(k)
    for _ in range(max_inner):
        obj, grad, info = item_terms(p, r, w, theta, pri)
        step = np.linalg.solve(info + ridge, grad[:, :, None])[:, :, 0]
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, MAX_STEP / np.maximum(big, 1e-300))[:, None]
        t = np.ones(len(p.a))
        for _ in range(40):
            cand = _clip(_add(p, step, t), pri)
            new_obj, _, _ = item_terms(cand, r, w, theta, pri, need="obj")
            bad = new_obj < obj - 1e-12 * np.abs(obj)
            if not bad.any():
                break
            t[bad] *= 0.5
        else:  # no ascent possible for these items: keep them
            cand.a[bad], cand.d[bad] = p.a[bad], p.d[bad]
            if cand.g is not None:
                cand.g[bad] = p.g[bad]
        moved = np.abs(np.stack([cand.a - p.a, cand.d - p.d], axis=1)).max()
        p = cand
        if moved < tol:
            break
    return p


def _mstep_1pl(p, r, w, theta, pri, max_inner, tol) -> Params:
    a = float(p.a[0])
    d = p.d.copy()
    n_items = len(d)

    def total(a_val: float, d_val: np.ndarray, need: str = "all"):
        pp = Params(np.full(n_items, a_val), d_val)
        obj, grad, info = item_terms(pp, r, w, theta, pri, include_a_prior=False, need=need)
        tot = obj.sum()
        if pri.a is not None:
            va, ga, ia = _prior_a(np.array([a_val]), pri.a)
            tot += va[0]
            if grad is not None:
                return tot, grad, info, ga[0], ia[0]
        return tot, grad, info, 0.0, 0.0

    for _ in range(max_inner):
        obj, grad, info, ga_pri, ia_pri = total(a, d)
        ga = grad[:, 0].sum() + ga_pri
        jaa = info[:, 0, 0].sum() + ia_pri
        jad, jdd, gd = info[:, 0, 1], info[:, 1, 1] + 1e-9, grad[:, 1]
        schur = jaa - (jad**2 / jdd).sum() + 1e-9
        da = (ga - (jad * gd / jdd).sum()) / schur
        dd = (gd - jad * da) / jdd
        big = max(abs(da), np.abs(dd).max())
        scale = min(1.0, MAX_STEP / max(big, 1e-300))
        t = scale
        for _ in range(40):
            cand = _clip(Params(np.full(n_items, a + t * da), d + t * dd), pri)
            new_obj = total(float(cand.a[0]), cand.d, need="obj")[0]
            if new_obj >= obj - 1e-12 * abs(obj):
                break
            t *= 0.5
        else:
            break
        moved = max(abs(cand.a[0] - a), np.abs(cand.d - d).max())
        a, d = float(cand.a[0]), cand.d
        if moved < tol:
            break
    return Params(np.full(n_items, a), d)


def log_prior_total(p: Params, pri: Priors, model: str) -> float:
    """Sum of log prior densities (the a prior counted once for the 1PL common slope)."""
    val, _, _ = _prior_terms(p, pri, include_a=model != "1pl")
    tot = float(val.sum())
    if model == "1pl" and pri.a is not None:
        tot += float(_prior_a(p.a[:1], pri.a)[0][0])
    return tot


# ---------------------------------------------------------------- packing for SQUAREM / SE


def pack(p: Params, model: str) -> np.ndarray:
    if model == "1pl":
        return np.concatenate([p.a[:1], p.d])
    parts = [p.a, p.d] + ([] if p.g is None else [p.g])
    return np.concatenate(parts)


def unpack(v: np.ndarray, model: str, n_items: int) -> Params:
    if model == "1pl":
        return Params(np.full(n_items, v[0]), v[1:].copy())
    a, d = v[:n_items].copy(), v[n_items : 2 * n_items].copy()
    g = v[2 * n_items :].copy() if model == "3pl" else None
    return Params(a, d, g)


def full_gradient(
    p: Params, r: np.ndarray, w: np.ndarray, theta: np.ndarray, pri: Priors, model: str
) -> np.ndarray:
    """Gradient of the marginal log posterior (Fisher identity), packed like ``pack``."""
    _, grad, _ = item_terms(p, r, w, theta, pri, include_a_prior=model != "1pl")
    if model == "1pl":
        ga = grad[:, 0].sum()
        if pri.a is not None:
            ga += _prior_a(p.a[:1], pri.a)[1][0]
        return np.concatenate([[ga], grad[:, 1]])
    return np.concatenate([grad[:, j] for j in range(grad.shape[1])])


# ---------------------------------------------------------------- EM driver


@dataclass
class EMResult:
    params: Params
    loglik: float
    objective: float
    iterations: int
    converged: bool
    abilities: np.ndarray
    cov_blocks: np.ndarray | None = None  # (I, k, k) covariance of (a, d[, g]) per item
    se_method: str = "none"
    warnings: list[str] = field(default_factory=list)


def initial_params(enc: Encoded, model: str) -> Params:
    """Start values from item proportions correct (a = 1, c = 0.2 for the 3PL)."""
    n = np.bincount(enc.item, minlength=enc.n_items).astype(float)
    k = np.bincount(enc.item, weights=enc.y.astype(float), minlength=enc.n_items)
    prop = np.clip((k + 0.5) / (n + 1.0), 0.02, 0.98)
    a = np.ones(enc.n_items)
    if model == "3pl":
        c = 0.2
        adj = np.clip((prop - c) / (1 - c), 0.02, 0.98)
        return Params(a, np.log(adj / (1 - adj)) * 1.7, np.full(enc.n_items, np.log(c / (1 - c))))
    return Params(a, np.log(prop / (1 - prop)) * 1.7)


def run_em(
    enc: Encoded,
    model: str,
    *,
    priors: Priors,
    quad_points: int = 61,
    quad_range: float = 6.0,
    max_iter: int = 500,
    tol: float = 1e-6,
    se: str = "auto",
    progress: bool = False,
    chunk_cells: int = 1 << 21,
    accelerate: bool = True,
    backend: str = "auto",
) -> EMResult:
    """Fit by EM (SQUAREM-accelerated), then EAP abilities and item standard errors."""
    theta, logw = quadrature(quad_points, quad_range)
    x = design_matrix(enc)
    es = EStep(x, theta, logw, chunk_cells, backend)
    n_items = enc.n_items
    warnings: list[str] = []

    def em_map(p: Params, r: np.ndarray, w: np.ndarray) -> Params:
        return mstep(p, r, w, theta, priors, model)

    fast = es.fast_ok
    se_method = se
    if se == "auto":
        budget = EXACT_SE_BUDGET_1PL if model == "1pl" else EXACT_SE_BUDGET
        n_par = len(pack(initial_params(enc, model), model))
        se_method = "exact" if n_par * enc.n_responses <= budget else "louis-block"
    # While polishing, each E-step may be the last one: it also computes the abilities and the
    # Louis accumulation, kept in ``final`` for the point it was run at.
    polishing = False
    final: dict[str, Any] = {}

    def evaluate(p: Params) -> tuple[float, float, np.ndarray, np.ndarray]:
        if polishing:
            cb, b_mat = (
                louis_accumulator(p, theta, n_items) if se_method == "louis-block" else (None, None)
            )
            ll, r, w, ab = es.run(p, abilities=True, callback=cb)
            final.update(p=p, pre=(b_mat, ab))
        else:
            ll, r, w, _ = es.run(p, fast=fast)
        return ll, ll + log_prior_total(p, priors, model), r, w

    from tqdm import tqdm

    bar = tqdm(
        total=max_iter,
        desc=f"EM {model}",
        disable=None if progress else True,
        file=sys.stderr,
        leave=False,
    )
    p = _clip(initial_params(enc, model), priors)
    ll, obj, r, w = evaluate(p)
    converged = False
    it = 0
    # Stop when the relative change of the objective is below ``tol`` and the largest parameter
    # change below sqrt(tol)/10 (1e-4 at the default tol = 1e-6, mirt's default stopping rule).
    # Large problems iterate with float32 E-steps first; once those converge, plain float64 EM
    # steps polish the estimate until the same rule holds in float64.
    param_tol = np.sqrt(tol) * 0.1
    while it < max_iter:
        v0 = pack(p, model)
        p1 = em_map(p, r, w)
        it += 1
        ll1, obj1, r1, w1 = evaluate(p1)
        new_p, new_ll, new_obj, new_r, new_w = p1, ll1, obj1, r1, w1
        if accelerate and not polishing and it + 1 < max_iter:
            p2 = em_map(p1, r1, w1)
            it += 1
            v1, v2 = pack(p1, model), pack(p2, model)
            rr, vv = v1 - v0, v2 - 2 * v1 + v0
            nv = np.linalg.norm(vv)
            accepted = False
            if nv > 0:
                alpha = -np.linalg.norm(rr) / nv
                if alpha < -1.0:
                    # the SQUAREM point is kept when it improves on p1; p2 is evaluated only
                    # otherwise (one E-step less per accepted extrapolation)
                    alpha = max(alpha, -50.0)
                    vx = v0 - 2 * alpha * rr + alpha**2 * vv
                    px = _clip(unpack(vx, model, n_items), priors)
                    llx, objx, rx, wx = evaluate(px)
                    if np.isfinite(objx) and objx > obj1:
                        new_p, new_ll, new_obj, new_r, new_w = px, llx, objx, rx, wx
                        accepted = True
            if not accepted:
                ll2, obj2, r2, w2 = evaluate(p2)
                new_p, new_ll, new_obj, new_r, new_w = p2, ll2, obj2, r2, w2
        dpar = _param_change(p, new_p)
        dobj = new_obj - obj
        p, ll, obj, r, w = new_p, new_ll, new_obj, new_r, new_w
        bar.update(it - bar.n)
        bar.set_postfix(loglik=f"{ll:.4f}")
        if abs(dobj) <= tol * max(1.0, abs(obj)) and dpar < param_tol:
            if not fast:
                converged = True
                break
            fast = False
            ll, obj, r, w = evaluate(p)
            polishing = True
    bar.close()
    if fast:  # out of iterations in float32: report float64 values
        fast = False
        ll, obj, r, w = evaluate(p)
    if not converged:
        warnings.append(f"EM did not converge in {max_iter} iterations")

    result = EMResult(p, ll, obj, it, converged, np.empty((0, 2)), warnings=warnings)
    pre = final["pre"] if final.get("p") is p else None
    if se_method == "louis-block":  # abilities come from the same E-step pass
        result.cov_blocks, result.abilities = _cov_block(
            p, es, r, w, theta, priors, model, enc.n_items, pre=pre
        )
    else:
        result.abilities = pre[1] if pre is not None else es.run(p, abilities=True)[3]
        if se_method == "exact":
            result.cov_blocks = _cov_exact(p, es, theta, priors, model, warnings)
    result.se_method = se_method
    return result


def _param_change(p: Params, q: Params) -> float:
    dc = 0.0 if p.g is None else float(np.abs(p.c - q.c).max())
    return max(float(np.abs(p.a - q.a).max()), float(np.abs(p.d - q.d).max()), dc)


# ---------------------------------------------------------------- standard errors


def _cov_exact(p, es: EStep, theta, priors, model, warnings) -> np.ndarray:
    """Covariance from the numerical Hessian of the marginal log posterior (central differences
    of the analytic gradient)."""
    n_items = len(p.a)
    v = pack(p, model)

    def grad_at(vec: np.ndarray) -> np.ndarray:
        pp = unpack(vec, model, n_items)
        _, r, w, _ = es.run(pp)
        return full_gradient(pp, r, w, theta, priors, model)

    h_mat = np.empty((len(v), len(v)))
    for j in range(len(v)):
        h = 1e-5 * max(1.0, abs(v[j]))
        vp, vm = v.copy(), v.copy()
        vp[j] += h
        vm[j] -= h
        h_mat[:, j] = (grad_at(vp) - grad_at(vm)) / (2 * h)
    info = -(h_mat + h_mat.T) / 2
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


def louis_accumulator(p: Params, theta: np.ndarray, n_items: int) -> tuple[Any, np.ndarray]:
    """E-step callback accumulating Σ_j m_j m_j^T per item, m_j = E_post[(y − P) G], and the
    (items, k, k) array it fills."""
    k = 2 if p.g is None else 3
    prob, gvec = _louis_g(p, theta)
    # Σ_j m_j m_j^T with m_j = E_post[(y − P) G]
    vecs = np.concatenate([gvec, gvec * prob[:, None, :]], axis=1)  # (I, 2k, Q)
    b_mat = np.zeros((n_items, k, k))

    n_vec = 2 * k
    flat = vecs.transpose(1, 0, 2).reshape(n_vec * n_items, -1)  # (2k·I, Q)
    flat_p = flat[k * n_items :]  # the E_post[P G] rows

    def accumulate(item: np.ndarray, m: np.ndarray) -> None:
        for u in range(k):
            for v in range(u, k):
                add = np.bincount(item, weights=m[:, u] * m[:, v], minlength=n_items)
                b_mat[:, u, v] += add
                if v != u:
                    b_mat[:, v, u] += add

    def cb(ch: Chunk, post: np.ndarray) -> None:
        xc = ch.x
        if ch.dense:
            correct, seen = ch.correct_seen()
            step = max(1, (1 << 21) // (n_vec * n_items))
            for lo in range(0, xc.shape[0], step):
                pb = post[lo : lo + step]
                if p.g is None:  # E_post[G] is the same for every item
                    eg = pb @ gvec[0].T
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
                        b_mat[:, u, v] += add
                        if v != u:
                            b_mat[:, v, u] += add
            return
        rows = np.repeat(np.arange(xc.shape[0]), np.diff(xc.indptr))
        cols = xc.indices
        # 1PL/2PL: G = (θ, 1) is the same for every item, so E_post[G] is per learner and only
        # E_post[P G] needs the item's probabilities
        post_g = post @ gvec[0].T if p.g is None else None
        for lo in range(0, len(cols), 100_000):
            sl = slice(lo, lo + 100_000)
            item = cols[sl] % n_items
            y = (cols[sl] < n_items).astype(float)
            prow = post[rows[sl]]
            if post_g is not None:
                pg = post_g[rows[sl]]
                prow *= prob[item]
                pgp = prow @ gvec[0].T
                accumulate(item, y[:, None] * pg - pgp)
                continue
            dots = np.empty((len(item), n_vec))
            for c in range(n_vec):
                dots[:, c] = np.einsum("nq,nq->n", prow, vecs[item, c])
            accumulate(item, y[:, None] * dots[:, :k] - dots[:, k:])

    return cb, b_mat


def _cov_block(
    p, es: EStep, r, w, theta, priors, model, n_items, pre=None
) -> tuple[np.ndarray, Any]:
    """Per-item observed information by Louis' formula, ignoring cross-item terms.

    Returns the covariance blocks and the EAP abilities (computed in the same E-step pass).
    ``pre`` = (Σ m m^T blocks, abilities) from an E-step at ``p`` with ``louis_accumulator``'s
    callback, which saves that pass.
    """
    k = 2 if p.g is None else 3
    include_a = model != "1pl"

    def grad_items(pp: Params) -> np.ndarray:
        return item_terms(pp, r, w, theta, priors, include_a_prior=include_a)[1]

    # complete-data Hessian per item (numerical, items are independent given the counts)
    hc = np.empty((n_items, k, k))
    for j in range(k):
        step = np.zeros((n_items, k))
        hj = 1e-5 * np.maximum(1.0, np.abs(_col(p, j)))
        step[:, j] = hj
        ones = np.ones(n_items)
        gp = grad_items(_add(p, step, ones))
        gm = grad_items(_add(p, -step, ones))
        hc[:, :, j] = (gp - gm) / (2 * hj[:, None])
    hc = (hc + hc.transpose(0, 2, 1)) / 2
    prob, gvec = _louis_g(p, theta)
    # E_post[s s^T] summed over learners, from the expected counts
    wgt = r * (1 - prob) ** 2 + w * prob**2
    a_mat = np.einsum("iq,ikq,ilq->ikl", wgt, gvec, gvec)
    if pre is None:
        cb, b_mat = louis_accumulator(p, theta, n_items)
        abilities = es.run(p, abilities=True, callback=cb)[3]
    else:
        b_mat, abilities = pre
    info = -hc - a_mat + b_mat
    if model == "1pl":
        # exact row/column of the common slope (finite differences of the marginal gradient);
        # only the difficulty-difficulty block is approximated (per item, Louis)
        v = pack(p, model)
        h = 1e-5 * max(1.0, abs(v[0]))
        cols = []
        for sign in (1.0, -1.0):
            vv = v.copy()
            vv[0] += sign * h
            pp = unpack(vv, model, n_items)
            _, rr, ww, _ = es.run(pp)
            cols.append(full_gradient(pp, rr, ww, theta, priors, model))
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
        return cov, abilities
    cov = np.full((n_items, k, k), np.nan)
    for i in range(n_items):
        with contextlib.suppress(np.linalg.LinAlgError):
            cov[i] = np.linalg.inv(info[i])
    return cov, abilities


def _col(p: Params, j: int) -> np.ndarray:
    return [p.a, p.d, p.g][j]


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
