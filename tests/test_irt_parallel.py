"""IRT over learner shards: identical results for any number of workers (threads) and for the
Dask engine, every learner in one shard, and the settings' validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from learnops import irt
from learnops.config import IrtConfig
from learnops.irt import mstep, parallel, se
from learnops.irt.data import encode
from learnops.irt.estep import quadrature
from learnops.irt.sim import simulate


def _data() -> pd.DataFrame:
    """Sparse 2PL answers with retries (repeated learner × item answers)."""
    df = simulate(1200, 20, 6, seed=21).responses
    again = df.sample(frac=0.3, random_state=2).copy()
    again["correct"] = (np.random.default_rng(2).random(len(again)) < 0.6).astype(int)
    return pd.concat([df, again], ignore_index=True)


@pytest.fixture
def small_shards(monkeypatch):
    """About 1,000 responses per shard, so that the small data has 11 shards (5 SE lanes → 4)."""
    monkeypatch.setattr(parallel, "SHARD_RESPONSES", 1_000)


def test_shards_partition_the_learners_by_a_stable_hash():
    enc = encode(_data())
    codes = np.arange(enc.n_learners)
    which = parallel.shard_of(codes, 7)
    assert set(np.unique(which)) == set(range(7))
    counts = np.bincount(which)
    assert counts.min() > 0.8 * counts.mean()  # balanced
    # the same learners give the same shards (no salted hash), and not in id order
    np.testing.assert_array_equal(which, parallel.shard_of(codes.copy(), 7))
    assert (np.diff(which) != 0).mean() > 0.5
    # every learner is in exactly one shard, so each learner's responses are in one shard
    es = parallel.ShardedEStep(enc, *quadrature(21, 6.0), n_shards=7)
    rows = np.concatenate(es.rows)
    assert len(rows) == enc.n_learners and len(np.unique(rows)) == enc.n_learners
    assert es.n_shards == 7


def test_each_shard_design_is_those_rows_of_the_whole_design():
    """Built from the shard's own responses, in any input order (retries included)."""
    import scipy.sparse as sp

    from learnops.irt.estep import design_matrix

    df = _data().sample(frac=1.0, random_state=5)  # learners not sorted
    enc = encode(df)
    whole = design_matrix(enc)
    es = parallel.ShardedEStep(enc, *quadrature(21, 6.0), n_shards=7, backend="numpy")
    for rows, shard in zip(es.rows, es.handles, strict=True):
        part = whole[rows]
        built = sp.vstack([c.x for c in shard.estep.chunks]).tocsr()
        np.testing.assert_array_equal(built.indptr, part.indptr)
        np.testing.assert_array_equal(built.indices, part.indices)  # same order within rows


@pytest.mark.parametrize("se", ["louis-exact", "louis-block"])
def test_results_are_identical_for_any_number_of_workers(small_shards, se):
    df = _data()
    fits = [
        irt.fit(df, "2pl", se=se, engine=parallel.LocalEngine(workers)) for workers in (1, 2, 3)
    ]
    base = fits[0]
    for f in fits[1:]:
        assert f.loglik == base.loglik
        assert f.iterations == base.iterations
        pd.testing.assert_frame_equal(f.items, base.items, check_exact=True)
        pd.testing.assert_frame_equal(f.abilities, base.abilities, check_exact=True)


def test_item_blocks_on_threads_and_tiles_give_the_same_fit(small_shards, monkeypatch):
    """600 items: the M-step runs in two item blocks (``mstep.item_blocks``) and the
    information's Cholesky and inverse in 13 tiles of 96 parameters (``se.TILE``), on 1, 2
    and 3 threads: the same numbers, to the bit."""
    monkeypatch.setattr(se, "TILE", 96)
    monkeypatch.setattr(mstep, "BLOCK_ITEMS", 256)
    assert len(mstep.item_blocks(600)) == 2
    df = simulate(2500, 600, 12, seed=5).responses
    fits = [
        irt.fit(df, "2pl", se="louis-exact", engine=parallel.LocalEngine(workers))
        for workers in (1, 2, 3)
    ]
    base = fits[0]
    assert base.items["discrimination_se"].notna().all()
    for f in fits[1:]:
        assert f.loglik == base.loglik
        assert f.iterations == base.iterations
        pd.testing.assert_frame_equal(f.items, base.items, check_exact=True)
        pd.testing.assert_frame_equal(f.abilities, base.abilities, check_exact=True)


def _mstep_problem(model: str, n_items: int, seed: int = 8):
    from learnops.irt.params import Params, Priors

    rng = np.random.default_rng(seed)
    theta, logw = quadrature(61, 6.0)
    a, d = rng.lognormal(0, 0.4, n_items), rng.normal(0, 1.5, n_items)
    g = rng.normal(-1.5, 0.5, n_items) if model == "3pl" else None
    c = 0.0 if g is None else (1 / (1 + np.exp(-g)))[:, None]
    prob = c + (1 - c) / (1 + np.exp(-(np.outer(a, theta) + d[:, None])))
    counts = np.exp(logw) * rng.integers(5, 5000, n_items)[:, None]
    r, w = prob * counts, (1 - prob) * counts
    pri = Priors(a=(0.0, 0.5), c=(5, 17) if g is not None else None)
    start = Params(
        np.ones(n_items), np.zeros(n_items), None if g is None else np.full(n_items, -1.4)
    )
    return (start, r, w, theta, pri, model), (a, d, g)


@pytest.mark.parametrize("model", ["2pl", "3pl"])
def test_the_m_step_in_item_blocks_is_the_one_block_m_step(model, monkeypatch):
    """Item blocks run on threads give the serial run's numbers to the bit; blocks of any size
    give the one-block M-step's to rounding (each item stops on its own move: blocks only
    change where an item sits in the arrays), priors and step halving included."""
    from concurrent.futures import ThreadPoolExecutor

    args, (a, _, g) = _mstep_problem(model, 1100)
    monkeypatch.setattr(mstep, "BLOCK_ITEMS", 10**6)
    one = mstep.mstep(*args)
    assert np.median(np.abs(one.a - a)) < 0.05  # a real M-step (near the generating values)
    with ThreadPoolExecutor(4) as pool:
        for size, blocks in ((500, 2), (250, 4)):
            monkeypatch.setattr(mstep, "BLOCK_ITEMS", size)
            assert len(mstep.item_blocks(1100)) == blocks
            serial = mstep.mstep(*args)
            out = mstep.mstep(*args, map_fn=lambda f, xs: list(pool.map(f, xs)))
            for name in ("a", "d", "g"):
                if getattr(one, name) is None:
                    continue
                np.testing.assert_array_equal(getattr(out, name), getattr(serial, name))
                np.testing.assert_allclose(getattr(out, name), getattr(one, name), rtol=1e-12)


def test_each_item_stops_on_its_own_move(monkeypatch):
    """An item whose a and d moved less than ``tol`` takes no further step, whatever the
    other items do: solving it alone gives the same values as solving it among many."""
    args, _ = _mstep_problem("2pl", 300, seed=3)
    start, r, w, theta, pri, model = args
    monkeypatch.setattr(mstep, "BLOCK_ITEMS", 10**6)
    together = mstep.mstep(*args, tol=1e-3)
    for j in (0, 77, 299):
        alone = mstep.mstep(
            mstep._take(start, slice(j, j + 1)),
            r[j : j + 1],
            w[j : j + 1],
            theta,
            pri,
            model,
            tol=1e-3,
        )
        assert alone.a[0] == pytest.approx(together.a[j], abs=1e-12)
        assert alone.d[0] == pytest.approx(together.d[j], abs=1e-12)


def test_item_blocks_are_balanced_and_fixed_by_the_item_count():
    assert mstep.item_blocks(0) == [slice(0, 0)]
    assert mstep.item_blocks(1999) == [slice(0, 1999)]  # fewer than two blocks' worth
    for n in (2000, 2999, 10_000, 100_003):
        parts = mstep.item_blocks(n)
        assert parts[0].start == 0 and parts[-1].stop == n
        assert len(parts) == n // mstep.BLOCK_ITEMS
        assert all(p.stop == q.start for p, q in zip(parts[:-1], parts[1:], strict=True))
        sizes = [p.stop - p.start for p in parts]
        assert max(sizes) - min(sizes) <= 1


def test_sharded_fit_equals_the_single_shard_fit(small_shards, monkeypatch):
    """Sharding changes only the order of the sums: the same estimates and SEs."""
    df = _data()
    sharded = irt.fit(df, "2pl", se="louis-exact")
    monkeypatch.setattr(parallel, "SHARD_RESPONSES", 10**9)
    single = irt.fit(df, "2pl", se="louis-exact")
    assert sharded.loglik == pytest.approx(single.loglik, rel=1e-12)
    cols = ["discrimination", "difficulty", "discrimination_se", "difficulty_se"]
    np.testing.assert_allclose(sharded.items[cols], single.items[cols], rtol=1e-8)
    np.testing.assert_allclose(sharded.abilities["theta"], single.abilities["theta"], atol=1e-8)


def test_dask_engine_equals_the_local_engine(small_shards):
    """A Dask LocalCluster (in-process workers here) gives the local engine's fit: items to
    1e-5, log-likelihood to 1e-4 (in fact the same numbers: the same shards and sums)."""
    df = _data()
    local = irt.fit(df, "2pl", se="louis-exact", engine=parallel.LocalEngine(2))
    eng = parallel.DaskEngine(workers=2, processes=False)
    try:
        dask = irt.fit(df, "2pl", se="louis-exact", engine=eng)
        scored = irt.score(local.items, df, engine=eng)
    finally:
        eng.close()
    assert abs(dask.loglik - local.loglik) <= 1e-4
    cols = ["discrimination", "difficulty", "discrimination_se", "difficulty_se"]
    np.testing.assert_allclose(dask.items[cols], local.items[cols], rtol=0, atol=1e-5)
    np.testing.assert_allclose(dask.abilities["theta"], local.abilities["theta"], atol=1e-5)
    ref = irt.score(local.items, df, engine=parallel.LocalEngine(1))
    np.testing.assert_allclose(scored["theta"], ref["theta"], atol=1e-12)


def test_settings_are_validated():
    assert IrtConfig().engine == "local" and IrtConfig().workers is None
    with pytest.raises(ValidationError):
        IrtConfig(engine="spark")
    with pytest.raises(ValidationError):
        IrtConfig(workers=0)
    with pytest.raises(irt_error()):
        parallel.make_engine("spark")


def irt_error() -> type[Exception]:
    from learnops.errors import LearnopsError

    return LearnopsError


def test_cli_engine_options(tmp_path):
    """`--workers` and `--engine` reach the fit; a bad engine is a user error (one line)."""
    from typer.testing import CliRunner

    from learnops.irt.cli import app

    path = tmp_path / "r.csv"
    simulate(300, 8, 5, seed=3).responses.to_csv(path, index=False)
    runner = CliRunner()
    ok = runner.invoke(app, ["fit", str(path), "--out", str(tmp_path / "m"), "--workers", "2"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["fit", str(path), "--out", str(tmp_path / "x"), "--engine", "spark"])
    assert isinstance(bad.exception, irt_error())
    assert "--engine must be local or dask" in str(bad.exception)


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_fit_heap_keeps_the_heap_during_the_outer_fit_only():
    lib = _FakeLibc()
    with parallel.fit_heap(lib):
        assert lib.calls == [("mallopt", k, v) for k, v in parallel.FIT_MALLOC.items()]
        with parallel.fit_heap(lib):  # a fit inside a fit: nothing more
            pass
        assert len(lib.calls) == len(parallel.FIT_MALLOC)
    after = lib.calls[len(parallel.FIT_MALLOC) :]
    assert after == [("mallopt", k, v) for k, v in parallel.AFTER_FIT_MALLOC.items()] + [
        ("malloc_trim", 0)
    ]
    lib.calls.clear()
    with pytest.raises(RuntimeError), parallel.fit_heap(lib):  # released on errors too
        raise RuntimeError("fit failed")
    assert lib.calls[-1] == ("malloc_trim", 0)
    # the values are ones glibc accepts (mallopt returns 1): the mmap threshold ≤ 32 MB
    assert parallel.FIT_MALLOC[-3] <= 32 << 20


def test_fit_heap_uses_glibc_here():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system: fit_heap is a no-op")
    from learnops.io import glibc

    lib = glibc()
    assert lib is not None
    assert lib.mallopt(-2, 128 << 10) == 1  # M_TOP_PAD accepted


def test_fits_run_inside_fit_heap(monkeypatch, tmp_path):
    """``irt.fit`` and ``fit_partitioned`` set the heap up once each and release it after."""
    from learnops.irt.partitioned import fit_partitioned, partition_responses

    lib = _FakeLibc()
    monkeypatch.setattr("learnops.io.glibc", lambda: lib)
    df = _data()
    irt.fit(df, "2pl", se="none", engine=parallel.LocalEngine(2))
    assert [c[0] for c in lib.calls].count("malloc_trim") == 1
    assert lib.calls[0] == ("mallopt", -3, parallel.FIT_MALLOC[-3])
    lib.calls.clear()
    df.to_parquet(tmp_path / "responses.parquet")
    partition_responses(tmp_path / "responses.parquet", tmp_path / "parts", shards=3)
    fit_partitioned(tmp_path / "parts", "2pl", se="none", engine=parallel.LocalEngine(2))
    assert [c[0] for c in lib.calls].count("malloc_trim") == 1
