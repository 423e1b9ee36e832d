"""Loops of small torch kernels run as one TorchScript call each.

The torch E-step and the exact Louis pass are loops over cache-sized blocks of learners, each a
handful of small torch operations. Called from Python, every operation releases the GIL and
takes it back, and with two or more worker threads those hand-overs queue behind each other. A
TorchScript function runs its whole loop in C++ with the GIL released once, calling the same
ATen operations in the same order: the numbers are those of the Python loop, bit for bit (the
functions below are plain Python too; ``tests/test_irt_kernels.py`` runs both ways).

Each function is compiled on first use, once per process (``scripted``). ``pair_positions`` and
``add_pairs`` are also called as plain Python by the 3PL path of the Louis pass.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any, List  # noqa: UP035  (TorchScript reads typing.List)

import torch
from torch import Tensor

_lock = threading.Lock()
_compiled: dict[str, Any] = {}


def scripted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by TorchScript (once per process, on first use)."""
    name = fn.__name__
    if name not in _compiled:
        with _lock:
            if name not in _compiled:
                with warnings.catch_warnings():  # torch.jit.script is deprecated, still supported
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _compiled[name] = torch.jit.script(fn)
    return _compiled[name]


def fast_blocks(
    idx: Tensor,
    m32: Tensor,
    lw: Tensor,
    table: Tensor,
    lse: Tensor,
    bounds: List[int],  # noqa: UP006
    offsets: List[Tensor],  # noqa: UP006
    bags: List[Tensor],  # noqa: UP006
    starts: List[Tensor],  # noqa: UP006
) -> Tensor:
    """Float32 E-step of a torch chunk (``estep._torch_chunk_fast``), block by block: each
    learner's log-likelihood at the nodes (embedding-bag sums of the stacked log-probability
    table ``m32`` plus the log prior ``lw``), its log normalizer into ``lse``, its posterior into
    ``table`` after the carried counts, and the counts carried to the next block (returned).

    ``bounds`` holds (lo, hi, a, b) per block: its rows and its responses' range in ``idx``."""
    n_cols = m32.shape[0]
    n_rows = lse.shape[0]
    carry = table[:n_cols]
    for k in range(len(offsets)):
        lo, hi, a, b = bounds[4 * k], bounds[4 * k + 1], bounds[4 * k + 2], bounds[4 * k + 3]
        post = table[n_cols : n_cols + hi - lo]
        sums = torch.embedding_bag(m32, idx[a:b], offsets[k], False, 0, False, None, False, None)
        torch.add(sums[0], lw, out=post)
        torch.logsumexp(post, [1], True, out=lse[lo:hi])
        post -= lse[lo:hi]
        torch.exp_(post)
        carry = torch.embedding_bag(
            table[: n_cols + hi - lo], bags[k], starts[k], False, 0, False, None, False, None
        )[0]
        if hi < n_rows:
            table[:n_cols] = carry
    return carry


def louis_common(
    pairs: Tensor,
    prob: Tensor,
    theta: Tensor,
    row_start: Tensor,
    jj: Tensor,
    cc: Tensor,
    nn: Tensor,
    post: Tensor,
    learners: Tensor,
    step: int,
    iu: Tensor,
    ju: Tensor,
    flat: Tensor,
) -> None:
    """Exact Louis sums (``se.ExactLouisAccumulator``) of 1PL/2PL learners with m items each,
    ``step`` learners at a time: rows b of ``jj`` (their sorted items) and ``cc`` / ``nn``
    (correct and answer counts), row ``learners[b]`` of ``post`` (posteriors w). With
    Y = [θ·√w·u; √w·u] (2m × Q, u_j = c_j − n_j P_j) and s = Y √w, Y Yᵀ − s sᵀ is added into
    the packed item-pair blocks ``pairs`` (pair positions ``iu``, ``ju``; ``flat``: their
    [aa, ad, da, dd] entries in the flattened Gram matrix)."""
    n, m = jj.shape[0], jj.shape[1]
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        b = hi - lo
        jt = jj[lo:hi]
        p = prob.index_select(0, jt.reshape(-1)).view(b, m, -1)
        y = torch.empty((b, 2, m, p.shape[2]), dtype=torch.float64)
        lower = y[:, 1]
        c = cc[lo:hi]
        cnt = nn[lo:hi]
        if bool((cnt == 1).all()):
            torch.sub(c[:, :, None], p, out=lower)
        else:
            torch.mul(p, cnt[:, :, None], out=lower)
            torch.sub(c[:, :, None], lower, out=lower)
        sw = post.index_select(0, learners[lo:hi]).sqrt_()
        lower *= sw[:, None, :]
        torch.mul(lower, theta, out=y[:, 0])
        yf = y.view(b, 2 * m, -1)
        gram = torch.bmm(yf, yf.transpose(1, 2))
        s = torch.bmm(yf, sw[:, :, None])
        gram.baddbmm_(s, s.transpose(1, 2), alpha=-1.0)
        values = gram.view(b, -1).index_select(1, flat)
        add_pairs(pairs, pair_positions(row_start, jt, iu, ju), values)


def pair_positions(row_start: Tensor, jt: Tensor, iu: Tensor, ju: Tensor) -> Tensor:
    """Positions in the packed upper triangle (row j starts at ``row_start[j]``) of the item
    pairs (jt[:, iu] ≤ jt[:, ju]) of each row of ``jt`` (sorted items)."""
    first = jt.index_select(1, iu)
    starts = row_start.index_select(0, first.reshape(-1)).view(first.shape)
    return starts + (jt.index_select(1, ju) - first)


def add_pairs(pairs: Tensor, pair_idx: Tensor, values: Tensor) -> None:
    """pairs[pair_idx] += values (k² values per item pair), as one flat scatter: the rows'
    k² values share a cache line, and 1-D index_add is several times faster than 2-D."""
    kk = pairs.shape[1]
    where = (pair_idx.reshape(-1, 1) * kk + torch.arange(kk)).reshape(-1)
    pairs.view(-1).index_add_(0, where, values.reshape(-1))
