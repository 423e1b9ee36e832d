"""E-step: posterior over quadrature nodes for every learner and the expected counts.

The responses are a sparse learners × (2·items) indicator matrix (``design_matrix``), processed in
row chunks: dense chunks use small BLAS products, sparse ones a sparse product or, on large
problems, torch float32 embedding-bag sums. The E-step returns the marginal log-likelihood, the
expected correct/wrong counts per item and node (mirt's ``r`` tables) and, on request, EAP
abilities.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from learnops.irt.params import Params, item_logprobs

if TYPE_CHECKING:
    from learnops.irt.data import Encoded

#: Chunks denser than this use dense BLAS products (built per chunk, never for all learners).
DENSE_FRACTION = 1 / 24
#: Sparse problems with at least this many responses use torch float32 kernels if available.
TORCH_MIN_RESPONSES = 2_000_000
#: EM runs in float32 ("fast" E-steps) until convergence, then polishes in float64, on problems
#: with at least this many responses.
FAST_MIN_RESPONSES = 1_000_000
#: Dense chunks are kept in memory between E-steps when all of them fit in this many bytes.
DENSE_CACHE_BYTES = 256 * 2**20
#: Torch chunks are processed in blocks of this many learners, whose float32 posterior (2 MB at
#: 61 nodes) stays in a core's cache between its passes; the expected counts are carried from
#: block to block so that they are the whole chunk's sums, bit for bit (any block size gives
#: the same numbers). 10M responses, one float32 E-step on 1 / 2 threads (before the blocks'
#: loop became one TorchScript call): 4,096 rows 0.27–0.28 / 0.16–0.17 s, 8,192 rows 0.27–0.29
#: / 0.15–0.16 s, 2,048 rows 0.33 / 0.21 s, 40,000 rows 0.31 / 0.18 s.
CACHE_ROWS = 8192


def quadrature(n_points: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Equally spaced nodes on [−bound, bound] and log-weights of N(0, 1), normalized."""
    theta = np.linspace(-bound, bound, n_points)
    logw = -0.5 * theta**2
    logw -= np.logaddexp.reduce(logw)
    return theta, logw


def design_matrix(enc: Encoded, dtype: Any = np.float64) -> sp.csr_matrix:
    """Sparse learners × (2·items): column i marks correct answers, column I+i wrong ones.

    One stored entry per response (repeated responses are kept, not merged), of value 1 in
    ``dtype`` (``np.int8`` when only the pattern is read: the torch chunks; ``EStep`` turns
    the chunks that multiply by the values into float64).
    """
    n_items = enc.n_items
    index_dtype = np.int32 if 2 * n_items < 2**31 and len(enc.y) < 2**31 else np.int64
    cols = enc.item.astype(index_dtype)
    np.add(cols, index_dtype(n_items), out=cols, where=enc.y == 0)  # no per-response temporaries
    already_sorted = len(enc.learner) < 2 or bool((enc.learner[1:] >= enc.learner[:-1]).all())
    if not already_sorted:
        cols = cols[np.argsort(enc.learner, kind="stable")]
    indptr = np.zeros(enc.n_learners + 1, dtype=index_dtype)
    np.cumsum(enc.learner_counts, out=indptr[1:])
    data = np.ones(len(cols), dtype=dtype)
    return sp.csr_matrix((data, cols, indptr), shape=(enc.n_learners, 2 * n_items))


def _row_block(x: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows start:stop of a CSR matrix, sharing its data and index arrays (no copy)."""
    stop = min(stop, x.shape[0])
    lo, hi = x.indptr[start], x.indptr[stop]
    return sp.csr_matrix(
        (x.data[lo:hi], x.indices[lo:hi], x.indptr[start : stop + 1] - lo),
        shape=(stop - start, x.shape[1]),
    )


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
        dense_cache_bytes: int = DENSE_CACHE_BYTES,
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
        cache_dense = dense_cells * 8 <= dense_cache_bytes
        for ch in self.chunks:
            if (ch.dense or not use_torch) and ch.x.dtype != np.float64:
                ch.x = ch.x.astype(np.float64)  # BLAS and sparse products read the values
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
        tables = item_tables(p, self.theta)
        lp, l1p, m = tables.lp, tables.l1p, tables.m
        counts = np.zeros_like(m)
        loglik = 0.0
        ab = np.empty((self.n_learners, 2)) if abilities else None
        for ch in self.chunks:
            if ch.torch_idx is not None:
                if fast:
                    ll_c, counts_c, post = _torch_chunk_fast(ch, tables.m32(), self.logw)
                else:  # the posteriors are kept only if used afterwards
                    keep = ab is not None or callback is not None
                    ll_c, counts_c, post = _torch_chunk(ch, tables.m32(), self.logw, keep)
                loglik += ll_c
                counts += counts_c
            elif ch.dense:
                ll_c, r_c, n_c, post = _dense_chunk(ch, p, lp, l1p, self.theta, self.logw, fast)
                loglik += ll_c
                counts[: self.n_items] += r_c
                counts[self.n_items :] += n_c - r_c
            else:
                ll_c, counts_c, post = _sparse_chunk(ch, m, self.logw)
                loglik += ll_c
                counts += counts_c
            if ab is not None:
                eap = post @ self.theta
                var = post @ (self.theta**2) - eap**2
                ab[ch.start : ch.start + len(eap), 0] = eap
                ab[ch.start : ch.start + len(eap), 1] = np.sqrt(np.maximum(var, 0.0))
            if callback is not None:
                callback(ch, post)
        return loglik, counts[: self.n_items], counts[self.n_items :], ab


@dataclass
class ItemTables:
    """log P, log(1 − P) and both stacked (2·items × nodes) at one ``p``; ``m32()`` is the
    stacked table as a float32 torch tensor, made on first use."""

    lp: np.ndarray
    l1p: np.ndarray
    m: np.ndarray
    _m32: Any = None

    def m32(self) -> Any:
        if self._m32 is None:  # threads racing here make equal tensors: either one will do
            import torch

            self._m32 = torch.from_numpy(self.m.astype(np.float32))
        return self._m32


_tables_lock = threading.Lock()
_tables_last: list[Any] = [None, None, None]  # weak refs to the last (p, theta), their tables


def item_tables(p: Params, theta: np.ndarray) -> ItemTables:
    """The item tables at ``p``: computed once for all the shards that run an E-step at the
    same ``p`` in this process (the last ``p``'s are kept)."""
    with _tables_lock:
        ref_p, ref_theta, tables = _tables_last
        if ref_p is not None and ref_p() is p and ref_theta() is theta:
            return tables
        lp, l1p = item_logprobs(p, theta)
        tables = ItemTables(lp, l1p, np.vstack([lp, l1p]))
        _tables_last[:] = [weakref.ref(p), weakref.ref(theta), tables]
        return tables


def _sparse_chunk(ch: Chunk, m: np.ndarray, logw: np.ndarray) -> tuple[float, Any, np.ndarray]:
    """Log-likelihood, stacked (correct; wrong) counts and posterior of a sparse chunk, given
    the stacked (log P; log(1 − P)) table ``m``."""
    post = ch.x @ m
    loglik = _posterior_inplace(post, logw)
    return loglik, ch.x.T @ post, post


def _posterior_inplace(post: np.ndarray, logw: np.ndarray) -> float:
    """Turn per-learner log-likelihoods at the nodes into posteriors (in place, stable
    log-sum-exp with the log prior weights ``logw``); return the marginal log-likelihood."""
    post += logw
    mx = post.max(axis=1, keepdims=True)
    post -= mx
    np.exp(post, out=post)
    tot = post.sum(axis=1, keepdims=True)
    post /= tot
    return float(mx.sum() + np.log(tot).sum())


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


@dataclass
class TorchIndex:
    """Embedding-bag indices of a torch chunk (``_torch_index``), per block of ``CACHE_ROWS``
    rows: ``bounds`` holds (lo, hi, a, b) for each (its rows, its responses' range in
    ``idx``), then its row offsets into ``idx``, its transposed bags and their offsets."""

    idx: Any
    bounds: list[int]
    offsets: list[Any]
    bags: list[Any]
    starts: list[Any]

    def blocks(self) -> Iterator[tuple[int, int, int, int, Any, Any, Any]]:
        """(lo, hi, a, b, offsets, bags, starts) of each block."""
        per_block = zip(self.offsets, self.bags, self.starts, strict=True)
        for k, (off, bags, starts) in enumerate(per_block):
            yield (*self.bounds[4 * k : 4 * k + 4], off, bags, starts)

    def table(self, n_cols: int, n_nodes: int) -> Any:
        """The bags' table: room for the carried sums (its first ``n_cols`` rows, zero) and
        for the largest block's posteriors."""
        import torch

        rows = max((hi - lo for lo, hi, *_ in self.blocks()), default=0)
        table = torch.empty((n_cols + rows, n_nodes))
        table[:n_cols].zero_()
        return table


def _torch_index(xc: sp.csr_matrix) -> TorchIndex:
    """Embedding-bag indices of a chunk: the responses' columns, and per block of
    ``CACHE_ROWS`` rows its row offsets and the transposed bags (one per column) over a table
    whose first rows are the carried sums (one per column) and the next ones the block's
    posteriors: each bag starts with its column's carry row, then its rows in order."""
    import torch

    ti = TorchIndex(torch.from_numpy(xc.indices.astype(np.int64)), [], [], [], [])
    for lo in range(0, xc.shape[0], CACHE_ROWS):
        hi = min(xc.shape[0], lo + CACHE_ROWS)
        a, b = int(xc.indptr[lo]), int(xc.indptr[hi])
        xt = _row_block(xc, lo, hi).T.tocsr()  # columns × block rows, rows sorted per column
        n_cols, rows = xt.shape
        sizes = np.diff(xt.indptr)
        starts = np.zeros(n_cols, dtype=np.int64)
        np.cumsum(sizes[:-1] + 1, out=starts[1:])
        bags = np.empty(xt.nnz + n_cols, dtype=np.int64)
        bags[starts] = np.arange(n_cols)  # the carry: row c of the table
        at = np.repeat(starts + 1 - xt.indptr[:-1], sizes) + np.arange(xt.nnz)
        bags[at] = xt.indices + n_cols  # the block's row r: row n_cols + r
        ti.bounds += [lo, hi, a, b]
        ti.offsets.append(torch.from_numpy((xc.indptr[lo:hi] - a).astype(np.int64)))
        ti.bags.append(torch.from_numpy(bags))
        ti.starts.append(torch.from_numpy(starts))
    return ti


def _torch_chunk(
    ch: Chunk, m32: Any, logw: np.ndarray, keep: bool = True
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Float32 embedding-bag sums (SIMD) for large sparse chunks, float64 posteriors (returned
    if ``keep``), one ``CACHE_ROWS`` block at a time: each row's posterior is made alone, and
    the per-row maxima and totals are summed over the chunk at the end, so the numbers are
    those of one pass over the whole chunk."""
    import torch
    from torch.nn.functional import embedding_bag

    ti = ch.torch_idx
    n_rows, n_cols = ch.x.shape[0], m32.shape[0]
    mx, tot = np.empty((n_rows, 1)), np.empty((n_rows, 1))
    whole = np.empty((n_rows, m32.shape[1])) if keep else None
    table = ti.table(n_cols, m32.shape[1])
    carry = table[:n_cols]
    for lo, hi, a, b, off, bags, starts in ti.blocks():
        sums = embedding_bag(ti.idx[a:b], m32, off, mode="sum").numpy()
        if whole is None:
            post = sums.astype(np.float64)
        else:
            post = whole[lo:hi]
            post[...] = sums  # to float64
        post += logw
        np.max(post, axis=1, keepdims=True, out=mx[lo:hi])
        post -= mx[lo:hi]
        np.exp(post, out=post)
        np.sum(post, axis=1, keepdims=True, out=tot[lo:hi])
        post /= tot[lo:hi]
        table[n_cols : n_cols + hi - lo] = torch.from_numpy(post)  # to float32
        carry = embedding_bag(bags, table[: n_cols + hi - lo], starts, mode="sum")
        if hi < n_rows:
            table[:n_cols] = carry
    loglik = float(mx.sum() + np.log(tot).sum())
    return loglik, carry.numpy().astype(np.float64), whole


def _torch_chunk_fast(ch: Chunk, m32: Any, logw: np.ndarray) -> tuple[float, np.ndarray, None]:
    """Like ``_torch_chunk`` with the posterior normalization in float32, one cache-sized
    block of learners at a time (``CACHE_ROWS``), the blocks' loop in one TorchScript call
    (``kernels.fast_blocks``)."""
    import torch

    from learnops.irt import kernels

    ti = ch.torch_idx
    lw = torch.from_numpy(logw.astype(np.float32))
    lse = torch.empty((ch.x.shape[0], 1), dtype=torch.float32)
    # the block's posteriors are computed in the bags' table, after the carried sums (no
    # concatenated copy of both per block)
    table = ti.table(m32.shape[0], m32.shape[1])
    carry = kernels.scripted(kernels.fast_blocks)(
        ti.idx, m32, lw, table, lse, ti.bounds, ti.offsets, ti.bags, ti.starts
    )
    return float(lse.sum(dtype=torch.float64)), carry.numpy().astype(np.float64), None
