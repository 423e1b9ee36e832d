"""Item standard errors with repeated (learner, item) answers: ``louis-exact`` against a
finite-difference Hessian of the marginal log-likelihood (1PL, 2PL, 3PL), the CLI's choice of
method, and the ``louis-block`` shortfall it replaces."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp
from typer.testing import CliRunner

from learnops import irt
from learnops.config import IrtConfig
from learnops.irt import se as se_mod
from learnops.irt.cli import app
from learnops.irt.data import encode
from learnops.irt.estep import quadrature
from learnops.irt.mstep import log_prior_total
from learnops.irt.params import Priors, item_logprobs, pack, unpack
from learnops.irt.sim import simulate

NO_PRIORS = IrtConfig(prior_a=None, prior_b=None, prior_c=None)


def with_repeats(df: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Add retries: 40% of the answers are repeated once (a new 0/1 draw), some twice."""
    rng = np.random.default_rng(seed)
    again = df.sample(frac=0.4, random_state=seed).copy()
    again["correct"] = (rng.random(len(again)) < 0.65).astype(int)
    third = again.sample(frac=0.3, random_state=seed + 1).copy()
    return pd.concat([df, again, third], ignore_index=True)


def marginal_log_posterior(vec: np.ndarray, enc, model: str, priors: Priors) -> float:
    """Marginal log-likelihood computed directly (61 nodes, every response its own factor),
    plus the log priors."""
    theta, logw = quadrature(61, 6.0)
    p = unpack(vec, model, enc.n_items)
    lp, l1p = item_logprobs(p, theta)
    per_resp = np.where(enc.y[:, None] == 1, lp[enc.item], l1p[enc.item])
    ones = np.ones(len(enc.y))
    rows = sp.csr_matrix((ones, (enc.learner, np.arange(len(enc.y)))))
    ll = rows @ per_resp
    return float(logsumexp(ll + logw, axis=1).sum()) + log_prior_total(p, priors, model)


def fd_cov_blocks(fit: irt.IrtFit, enc, model: str, priors: Priors) -> np.ndarray:
    """Per-item covariance blocks from a central-difference Hessian of the loglik values."""
    p = fit.params()
    v = pack(p, model)
    n = len(v)
    h = 1e-4 * np.maximum(1.0, np.abs(v))
    hess = np.empty((n, n))

    def f(x: np.ndarray) -> float:
        return marginal_log_posterior(x, enc, model, priors)

    f0 = f(v)
    for i in range(n):
        for j in range(i, n):
            e_i, e_j = np.zeros(n), np.zeros(n)
            e_i[i], e_j[j] = h[i], h[j]
            if i == j:
                val = (f(v + e_i) - 2 * f0 + f(v - e_i)) / h[i] ** 2
            else:
                val = (
                    f(v + e_i + e_j) - f(v + e_i - e_j) - f(v - e_i + e_j) + f(v - e_i - e_j)
                ) / (4 * h[i] * h[j])
            hess[i, j] = hess[j, i] = val
    cov = np.linalg.inv(-hess)
    n_items, k = enc.n_items, 3 if model == "3pl" else 2
    idx = [[0, 1 + i] if model == "1pl" else [i + t * n_items for t in range(k)]
           for i in range(n_items)]  # fmt: skip
    return np.stack([cov[np.ix_(ix, ix)] for ix in idx])


@pytest.mark.parametrize("model", ["1pl", "2pl", "3pl"])
def test_louis_exact_matches_finite_difference_hessian_with_repeats(model):
    per = None if model == "1pl" else 6  # dense-with-repeats and sparse-with-repeats designs
    df = with_repeats(simulate(300, 8, per, model=model, seed=3).responses)
    enc = encode(df)
    assert len(df) > len(df.drop_duplicates(["learner_id", "item_id"]))
    # the 3PL's guessing is weakly identified on 300 learners: its beta prior keeps it finite
    cfg = IrtConfig(prior_a=None, prior_b=None) if model == "3pl" else NO_PRIORS
    fit = irt.fit(df, model, config=cfg, se="louis-exact")
    assert fit.info["se_method"] == "louis-exact"
    pri = Priors(c=cfg.prior_c) if model == "3pl" else Priors()
    ref = se_mod.transformed_se(fit.params(), fd_cov_blocks(fit, enc, model, pri))
    cols = {"a": "discrimination_se", "b": "difficulty_se", "c": "guessing_se"}
    for key, col in cols.items():
        if key in ref:
            np.testing.assert_allclose(fit.items[col], ref[key], rtol=1e-3, err_msg=col)


@pytest.mark.parametrize(
    ("model", "per", "priors"),
    [
        ("2pl", None, True),
        ("2pl", 5, False),
        ("1pl", 5, True),
        ("3pl", 6, True),
        ("1pl", None, False),
        ("3pl", None, False),
    ],  # fmt: skip
)
def test_louis_exact_equals_numerical_hessian(model, per, priors):
    """Same observed information as ``exact`` (central differences of the analytic gradient),
    priors' Hessian included, on dense and sparse designs with and without repeats."""
    df = simulate(400, 8, per, model=model, seed=5).responses
    for data in (df, with_repeats(df)):
        cfg = None if priors else NO_PRIORS
        exact = irt.fit(data, model, config=cfg, se="exact").items
        louis = irt.fit(data, model, config=cfg, se="louis-exact").items
        cols = [c for c in exact.columns if c.endswith("_se")]
        np.testing.assert_allclose(louis[cols], exact[cols], rtol=1e-6)


def test_louis_block_understates_ses_with_repeats():
    """The reason for louis-exact: the per-response block approximation is too small."""
    df = with_repeats(simulate(400, 8, 5, seed=5).responses)
    exact = irt.fit(df, "2pl", config=NO_PRIORS, se="exact").items["difficulty_se"]
    block = irt.fit(df, "2pl", config=NO_PRIORS, se="louis-block").items["difficulty_se"]
    assert (block / exact).min() < 0.95


def test_auto_uses_louis_exact_above_the_budget():
    assert se_mod.choose_method("auto", "2pl", 10, 1000) == "exact"
    assert se_mod.choose_method("auto", "2pl", 2000, 10_000_000) == "louis-exact"
    assert se_mod.choose_method("auto", "3pl", 1000, 10_000_000) == "louis-exact"
    assert se_mod.choose_method("auto", "2pl", 50_000, 10_000_000) == "louis-block"
    assert se_mod.choose_method("louis-block", "2pl", 10, 100) == "louis-block"
    # long dense 3PL tests: the per-learner Gram matrices would cost too much
    flops = se_mod.louis_exact_flops("3pl", np.full(50_000, 100), 100, 61)
    assert flops > se_mod.LOUIS_EXACT_MAX_FLOPS
    assert se_mod.choose_method("auto", "3pl", 100, 5_000_000, flops) == "louis-block"
    # complete 2PL design: closed form, no per-learner cost
    assert se_mod.louis_exact_flops("2pl", np.full(50_000, 100), 100, 61) == 0
    sparse_10m = se_mod.louis_exact_flops("2pl", np.full(1_000_000, 10), 2000, 61)
    assert se_mod.choose_method("auto", "2pl", 2000, 10_000_000, sparse_10m) == "louis-exact"


def test_cli_no_priors_ses_match_exact_with_repeats(tmp_path, monkeypatch):
    """Acceptance: `learnops irt fit --no-priors` on 2PL data with repeated answers, above the
    exact-SE budget, reports SEs within 5% (median 2%) of the exact observed-information SEs."""
    monkeypatch.setattr(se_mod, "EXACT_SE_BUDGET", 0)  # force the large-data path
    df = with_repeats(simulate(1500, 12, 6, seed=11).responses)
    src = tmp_path / "responses.csv"
    df.to_csv(src, index=False)
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["fit", str(src), "--model", "2pl", "--no-priors",
                                   "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "fit.json").read_text())
    assert stats["se_method"] == "louis-exact"
    assert {"model", "loglik", "iterations", "converged", "n_learners", "n_items",
            "n_responses", "seconds"} <= set(stats)  # fmt: skip
    items = pd.read_csv(out / "items.csv")
    exact = irt.fit(df, "2pl", config=NO_PRIORS, se="exact").items
    for col in ("discrimination_se", "difficulty_se"):
        ratio = items[col].to_numpy() / exact[col].to_numpy()
        assert np.abs(ratio - 1).max() < 0.05 and np.median(np.abs(ratio - 1)) < 0.02, col


def _interleaved_upper(full: np.ndarray) -> np.ndarray:
    """The upper triangle of a symmetric matrix, the rest garbage (what the SE pass builds)."""
    out = np.triu(full)
    out += np.tril(np.full_like(full, 7.0), -1)
    return out


def _threads_map(fn, items):
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(fn, items))


@pytest.mark.parametrize("tile", [512, 16, 7])
@pytest.mark.parametrize("k", [2, 3])
def test_inverse_diag_blocks_in_place_equal_the_full_inverse(k, tile, monkeypatch):
    """One tile, and many (the last one smaller): numpy's inverse, and the same bits whether
    the tiles run on one thread or on three."""
    monkeypatch.setattr(se_mod, "TILE", tile)
    rng = np.random.default_rng(3)
    n_items = 40
    x = rng.standard_normal((k * n_items, k * n_items + 5))
    full = x @ x.T / x.shape[1] + 0.1 * np.eye(k * n_items)
    want = np.linalg.inv(full).reshape(n_items, k, n_items, k)
    diag = np.arange(n_items)
    got = []
    for map_fn in (None, _threads_map):
        warnings: list[str] = []
        got.append(
            se_mod._inverse_diag_blocks(_interleaved_upper(full), n_items, k, warnings, map_fn)
        )
        np.testing.assert_allclose(got[-1], want[diag, :, diag, :], rtol=1e-9, atol=1e-12)
        assert warnings == []
    np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.parametrize("tile", [512, 16])
@pytest.mark.parametrize("with_rebuild", [True, False])
def test_inverse_diag_blocks_fall_back_to_lu_on_the_original_matrix(
    with_rebuild, tile, monkeypatch
):
    """Not positive definite: the factorization overwrote part of ``info`` (with many tiles,
    several of them before the failing one); the LU fallback must still invert the original
    matrix (rebuilt, or copied before)."""
    monkeypatch.setattr(se_mod, "TILE", tile)
    rng = np.random.default_rng(4)
    n_items, k = 30, 2
    q, _ = np.linalg.qr(rng.standard_normal((k * n_items, k * n_items)))
    eig = np.linspace(0.5, 3.0, k * n_items)
    eig[7] = -0.8  # indefinite, still invertible
    full = (q * eig) @ q.T
    info = _interleaved_upper(full)
    rebuild = (lambda: _interleaved_upper(full)) if with_rebuild else None
    warnings: list[str] = []
    blocks = se_mod._inverse_diag_blocks(info, n_items, k, warnings, rebuild=rebuild)
    want = np.linalg.inv(full).reshape(n_items, k, n_items, k)
    diag = np.arange(n_items)
    np.testing.assert_allclose(blocks, want[diag, :, diag, :], rtol=1e-8, atol=1e-10)
    assert warnings and "not positive definite" in warnings[0]


@pytest.mark.parametrize("which", ["1pl", "lu"])
def test_other_inverses_do_not_depend_on_the_blas_threads(which):
    """The 1PL information's Cholesky inverse and the LU inverse of the exact SEs (and of the
    not-positive-definite fallback) run on one LAPACK thread: the same bits whatever the
    process allows BLAS (threaded LAPACK on a 600 × 600 matrix changes the last bits)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(6)
    n = 600
    x = rng.standard_normal((n, n + 10))
    info = x @ x.T / n + 0.1 * np.eye(n)
    outs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            if which == "1pl":
                outs.append(se_mod._inverse_blocks_1pl(info.copy(), n - 1, []))
            else:
                outs.append(se_mod.inverse_one_thread(info)[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    if which == "lu":
        np.testing.assert_allclose(outs[0] @ info, np.eye(n), atol=1e-9)
    else:  # (a, d_j) blocks of the inverse
        inv = np.linalg.inv(info)
        np.testing.assert_allclose(outs[0][5], inv[np.ix_([0, 6], [0, 6])], rtol=1e-9)
