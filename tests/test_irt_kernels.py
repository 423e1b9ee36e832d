"""TorchScript kernels (``learnops.irt.kernels``): compiled, they give the numbers of the same
functions run as Python, bit for bit; the Louis kernel agrees with the generic (3PL) path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from learnops.irt import estep, kernels, se
from learnops.irt.data import encode
from learnops.irt.em import initial_params
from learnops.irt.estep import EStep, design_matrix, item_tables, quadrature
from learnops.irt.sim import simulate


def _chunks(cache_rows: int, monkeypatch: pytest.MonkeyPatch) -> tuple[EStep, object]:
    monkeypatch.setattr(estep, "CACHE_ROWS", cache_rows)
    enc = encode(simulate(2500, 120, 6, seed=4).responses)
    theta, logw = quadrature(31, 6.0)
    es = EStep(design_matrix(enc, np.int8), theta, logw, chunk_cells=1 << 15, backend="torch")
    return es, initial_params(enc, "2pl")


@pytest.mark.parametrize("cache_rows", [1, 97, 8192])
def test_fast_blocks_compiled_equal_python(cache_rows, monkeypatch):
    es, p = _chunks(cache_rows, monkeypatch)
    m32 = item_tables(p, es.theta).m32()
    lw = torch.from_numpy(es.logw.astype(np.float32))
    assert len(es.chunks) > 1
    for ch in es.chunks:
        ti = ch.torch_idx
        outs = []
        for fn in (kernels.fast_blocks, kernels.scripted(kernels.fast_blocks)):
            table = ti.table(m32.shape[0], m32.shape[1])
            lse = torch.empty((ch.x.shape[0], 1))
            carry = fn(ti.idx, m32, lw, table, lse, ti.bounds, ti.offsets, ti.bags, ti.starts)
            outs.append((carry.clone(), lse))
        assert isinstance(kernels.scripted(kernels.fast_blocks), torch.jit.ScriptFunction)
        assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
        ll, counts, _ = estep._torch_chunk_fast(ch, m32, es.logw)
        np.testing.assert_array_equal(counts, outs[0][0].numpy().astype(np.float64))
        assert ll == float(outs[0][1].sum(dtype=torch.float64))


def _louis_inputs(seed: int, repeats: bool) -> tuple[se.ExactLouisAccumulator, object, np.ndarray]:
    """A 2PL accumulator, one chunk (with answers repeated up to 3 times if asked) and its
    posteriors."""
    df = simulate(400, 30, 8, seed=seed).responses
    if repeats:
        again = df.sample(frac=0.3, random_state=seed)
        again = again.assign(correct=np.random.default_rng(seed).integers(0, 2, len(again)))
        df = pd.concat([df, again, again], ignore_index=True)
    enc = encode(df)
    theta, logw = quadrature(21, 5.0)
    (ch,) = EStep(design_matrix(enc), theta, logw, backend="numpy").chunks
    p = initial_params(enc, "2pl")
    post = ch.x @ item_tables(p, theta).m
    estep._posterior_inplace(post, logw)
    return se.ExactLouisAccumulator(p, theta, enc.n_items), ch, post


@pytest.mark.parametrize("repeats", [False, True])
def test_louis_kernel_compiled_equals_python_and_the_generic_path(repeats, monkeypatch):
    acc, ch, post = _louis_inputs(3, repeats)
    monkeypatch.setattr(se, "_BATCH_ELEMENTS", 7 * 2 * 8 * 21)  # batches of 7 (and a rest)
    acc(ch, post)
    assert acc.dense_part is None and acc.pairs.abs().sum() > 0  # the per-learner path ran
    compiled = acc.pairs.clone()

    as_python = acc.fresh()
    monkeypatch.setattr(kernels, "scripted", lambda fn: fn)
    as_python(ch, post)
    assert torch.equal(as_python.pairs, compiled)

    # the generic (3PL) path, centered scores with item-specific G, given the 2PL's P and
    # G = (θ, 1): its tables are made first, then g set only to take that branch
    generic = acc.fresh()
    generic._t()
    generic.p = dataclasses.replace(acc.p, g=np.zeros(acc.n_items))
    batches = []
    gram = se.ExactLouisAccumulator._gram
    monkeypatch.setattr(
        se.ExactLouisAccumulator, "_gram", lambda *a: batches.append(len(a[2])) or gram(*a)
    )
    generic(ch, post)
    assert sum(batches) == ch.x.shape[0] and len(batches) > 1
    np.testing.assert_allclose(generic.pairs.numpy(), compiled.numpy(), rtol=1e-10, atol=1e-12)


def test_louis_pass_leaves_the_chunk_unchanged():
    """Repeated answers are merged per (learner, item) on a copy: the chunk's design matrix
    (read again by any later E-step on it) keeps its row pointers."""
    acc, ch, post = _louis_inputs(5, repeats=True)
    before = [v.copy() for v in (ch.x.indptr, ch.x.indices, ch.x.data)]
    acc(ch, post)
    first = acc.pairs.clone()
    for v, w in zip((ch.x.indptr, ch.x.indices, ch.x.data), before, strict=True):
        np.testing.assert_array_equal(v, w)
    again = acc.fresh()
    again(ch, post)
    assert torch.equal(again.pairs, first)
