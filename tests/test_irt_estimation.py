"""IRT estimation: LSAT7 against R mirt, parameter recovery, 1PL/3PL, standard errors, girth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learnops import irt
from learnops.config import IrtConfig
from learnops.irt import estep
from learnops.irt.data import encode
from learnops.irt.em import run_em
from learnops.irt.estep import EStep, design_matrix, quadrature
from learnops.irt.params import Priors
from learnops.irt.sim import simulate

DATA = Path(__file__).parent / "data"
NO_PRIORS = IrtConfig(prior_a=None, prior_b=None, prior_c=None)
# R mirt 1.47, mirt(LSAT7, 1, "2PL"): 61 nodes on [-6, 6] (mirt's 1-factor default)
MIRT_LOGLIK = -2658.805
MIRT_A = np.array([0.988, 1.081, 1.706, 0.765, 0.736])
MIRT_D = np.array([1.856, 0.808, 1.804, 0.486, 1.855])


@pytest.fixture(scope="module")
def lsat7() -> pd.DataFrame:
    return pd.read_csv(DATA / "lsat7.csv", dtype={"learner_id": str, "item_id": str})


@pytest.fixture(scope="module")
def lsat7_fit(lsat7):
    return irt.fit(lsat7, "2pl", config=NO_PRIORS)


def test_lsat7_patterns_match_long_data(lsat7):
    pat = pd.read_csv(DATA / "lsat7_patterns.csv")
    assert len(pat) == 32 and pat["n"].sum() == 1000
    wide = lsat7.pivot(index="learner_id", columns="item_id", values="correct")
    counts = wide.value_counts().rename("n").reset_index()
    merged = pat.merge(counts, on=list(wide.columns), suffixes=("", "_data"))
    assert len(merged) == 32
    assert (merged["n"] == merged["n_data"]).all()


def test_lsat7_2pl_matches_mirt(lsat7_fit):
    f = lsat7_fit
    assert f.converged
    assert abs(f.loglik - MIRT_LOGLIK) < 1e-3
    p = f.params()
    assert np.abs(p.a - MIRT_A).max() < 2e-3
    assert np.abs(p.d - MIRT_D).max() < 2e-3
    assert list(f.items["item_id"]) == ["Q1", "Q2", "Q3", "Q4", "Q5"]


def test_lsat7_patterns_give_same_fit(lsat7_fit):
    pat = pd.read_csv(DATA / "lsat7_patterns.csv")
    rows = []
    for k, row in pat.iterrows():
        for r in range(int(row["n"])):
            for item in ["Q1", "Q2", "Q3", "Q4", "Q5"]:
                rows.append((f"p{k}_{r}", item, int(row[item])))
    df = pd.DataFrame(rows, columns=["learner_hash", "item_id", "correct"])
    f = irt.fit(df, "2pl", config=NO_PRIORS, se="none")
    assert f.loglik == pytest.approx(lsat7_fit.loglik, abs=1e-8)


def test_lsat7_standard_errors_exact_vs_louis(lsat7):
    exact = irt.fit(lsat7, "2pl", config=NO_PRIORS, se="exact").items
    block = irt.fit(lsat7, "2pl", config=NO_PRIORS, se="louis-block").items
    for col in ("discrimination_se", "difficulty_se"):
        assert np.isfinite(exact[col]).all()
        # the block approximation drops cross-item terms: close, not equal
        np.testing.assert_allclose(block[col], exact[col], rtol=0.15)
    # mirt's Oakes SEs for a are ~0.17-0.32; ours must be in that range
    assert exact["discrimination_se"].between(0.1, 0.4).all()


def test_loglik_is_marginal_likelihood_by_brute_force(lsat7_fit, lsat7):
    """loglik equals a direct 61-node quadrature of the likelihood of each response pattern."""
    p = lsat7_fit.params()
    wide = lsat7.pivot(index="learner_id", columns="item_id", values="correct").to_numpy()
    theta, logw = quadrature(61, 6.0)
    prob = 1 / (1 + np.exp(-(np.outer(theta, p.a) + p.d)))  # (Q, I)
    lik = np.prod(np.where(wide[:, None, :] == 1, prob[None], 1 - prob[None]), axis=2)
    assert np.log(lik @ np.exp(logw)).sum() == pytest.approx(lsat7_fit.loglik, abs=1e-8)


@pytest.fixture(scope="module")
def sparse_sim():
    # 8000 learners × 25 of 200 items = 200k responses, sparse design
    return simulate(8000, 200, per_learner=25, seed=11)


def test_2pl_parameter_recovery_sparse(sparse_sim):
    f = irt.fit(sparse_sim.responses, "2pl")
    assert f.converged
    truth = sparse_sim.items.set_index("item_id").loc[f.items["item_id"]]
    assert np.corrcoef(f.items["difficulty"], truth["difficulty"])[0, 1] > 0.98
    assert np.corrcoef(f.items["discrimination"], truth["discrimination"])[0, 1] > 0.8
    th = pd.Series(sparse_sim.theta, index=[f"u{j:04d}" for j in range(8000)])
    assert np.corrcoef(f.abilities["theta"], th.loc[f.abilities["learner_id"]])[0, 1] > 0.85
    # SEs cover the truth at roughly the nominal rate
    z = (f.items["difficulty"].to_numpy() - truth["difficulty"].to_numpy()) / f.items[
        "difficulty_se"
    ].to_numpy()
    assert 0.85 < np.mean(np.abs(z) < 1.96) <= 1.0


def test_1pl_common_discrimination_and_recovery():
    s = simulate(3000, 30, seed=3, model="1pl")
    f = irt.fit(s.responses, "1pl", se="louis-block")
    assert f.items["discrimination"].nunique() == 1
    assert f.items["discrimination"].iloc[0] == pytest.approx(1.0, abs=0.08)
    truth = s.items.set_index("item_id").loc[f.items["item_id"]]
    assert np.abs(f.items["difficulty"].to_numpy() - truth["difficulty"].to_numpy()).max() < 0.25
    assert f.items["discrimination_se"].iloc[0] < 0.05


def test_3pl_recovers_guessing_with_priors():
    s = simulate(6000, 20, seed=5, model="3pl")
    f = irt.fit(s.responses, "3pl")
    assert {"guessing", "guessing_se"} <= set(f.items.columns)
    truth = s.items.set_index("item_id").loc[f.items["item_id"]]
    assert np.abs(f.items["guessing"].to_numpy() - truth["guessing"].to_numpy()).mean() < 0.06
    assert np.corrcoef(f.items["difficulty"], truth["difficulty"])[0, 1] > 0.95
    assert np.isfinite(f.items[["guessing_se", "difficulty_se"]].to_numpy()).all()
    # 3PL nests 2PL: its marginal likelihood cannot be much worse
    f2 = irt.fit(s.responses, "2pl", se="none")
    assert f.loglik > f2.loglik


@pytest.mark.slow
def test_standard_errors_match_replication_sd():
    cfg = IrtConfig(prior_a=None, prior_b=None)
    est, ses = [], []
    for rep in range(12):
        s = simulate(1000, 8, seed=100 + rep)
        # same items every replication: take the item parameters of replication 0
        if rep == 0:
            items = s.items
        rng = np.random.default_rng(rep)
        theta = rng.standard_normal(1000)
        z = items["discrimination"].to_numpy() * (theta[:, None] - items["difficulty"].to_numpy())
        y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(int)
        df = pd.DataFrame(
            {
                "learner_id": np.repeat(np.arange(1000).astype(str), 8),
                "item_id": np.tile(items["item_id"].to_numpy(), 1000),
                "correct": y.ravel(),
            }
        )
        f = irt.fit(df, "2pl", config=cfg, se="exact")
        est.append(f.items[["discrimination", "difficulty"]].to_numpy())
        ses.append(f.items[["discrimination_se", "difficulty_se"]].to_numpy())
    ratio = np.std(est, axis=0, ddof=1) / np.mean(ses, axis=0)
    # 12 replications: the SD itself has ~20% sampling error
    assert 0.6 < np.median(ratio) < 1.4
    assert ratio.min() > 0.4 and ratio.max() < 2.0


def test_priors_keep_degenerate_items_finite():
    s = simulate(500, 10, seed=2)
    df = s.responses.copy()
    extra = pd.DataFrame(
        {
            "learner_id": ["u000", "u001", "u002", "u003"],
            "item_id": ["easy", "easy", "hard", "single"],
            "correct": [1, 1, 0, 1],
        }
    )
    df = pd.concat([df, extra, pd.DataFrame({"learner_id": ["lonely"], "item_id": ["i00"],
                                             "correct": [1]})])  # fmt: skip
    for priors in (True, False):
        f = irt.fit(df, "2pl", priors=priors)
        cols = ["discrimination", "difficulty"]
        assert np.isfinite(f.items[cols].to_numpy()).all()
        assert np.isfinite(f.abilities[["theta", "theta_se"]].to_numpy()).all()
        text = " | ".join(f.warnings)
        assert "all responses correct: easy" in text
        assert "all responses wrong: hard" in text
        assert "single response" in text
    with_priors = irt.fit(df, "2pl").items.set_index("item_id")
    assert np.isfinite(with_priors[["discrimination_se", "difficulty_se"]].to_numpy()).all()
    assert abs(with_priors.loc["easy", "difficulty"]) < 15


def test_fit_is_deterministic_and_order_independent(sparse_sim):
    df = sparse_sim.responses.iloc[:20000]
    f1 = irt.fit(df, "2pl", se="none")
    f2 = irt.fit(df.sample(frac=1.0, random_state=1), "2pl", se="none")
    pd.testing.assert_frame_equal(f1.items, f2.items, rtol=1e-9)
    f3 = irt.fit(df, "2pl", se="none")
    pd.testing.assert_frame_equal(f1.items, f3.items, check_exact=True)


def test_encode_ids_are_strings():
    df = pd.DataFrame({"learner_hash": [1, 1, 2], "item_id": [10, 20, 10], "correct": [1, 0, 1]})
    enc = encode(df)
    assert list(enc.item_ids) == ["10", "20"] and list(enc.learner_ids) == ["1", "2"]


@pytest.mark.parametrize(
    "ids",
    [
        pd.Series([7, -3, 7, 12, -3, 0], dtype="int64"),  # dense range, negative ids
        pd.Series([5, 2, 5, 9], dtype="uint8"),
        pd.Series([3, 1, 3, 2], dtype="Int64"),  # nullable, no missing values
        pd.Series([10**12, 5, 10**12, 7], dtype="int64"),  # sparse range: hashing
        pd.Series(["b", "a", "b", "c"]),
    ],
)
def test_id_codes_equal_pandas_factorize(ids):
    from learnops.irt.data import _ids

    codes, uniques = _ids(ids, "learner_id", "responses")
    ref_codes, ref_uniques = pd.factorize(ids, sort=True)
    np.testing.assert_array_equal(codes, ref_codes)
    assert list(uniques) == [str(u) for u in ref_uniques]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1, 0, 1, 1], dtype="int8"),
        pd.Series([1, 0, 0, 1], dtype="int64"),
        pd.Series([1, 1, 0, 0], dtype="uint8"),
        pd.Series([True, False, True, True]),
        pd.Series([1.0, 0.0, 1.0, 0.0]),
        pd.Series([1, 0, 1, 0], dtype="Int64"),
        pd.Series(["true", "0", "False", "1"]),
    ],
)
def test_binary_correct_accepts_zero_one_of_any_type(values):
    from learnops.irt.data import binary_correct

    y = binary_correct(values)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, pd.to_numeric(values.replace({"true": 1, "False": 0})))


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (pd.Series([1, 0, 2, 1, -1], dtype="int8"), "2 bad value(s), e.g. -1, 2"),
        (pd.Series([1, 0, 7], dtype="uint16"), "1 bad value(s), e.g. 7"),
        (pd.Series([1.0, np.nan, 0.5]), "2 bad value(s), e.g. 0.5, nan"),
        (pd.Series([1, pd.NA], dtype="Int64"), "1 bad value(s), e.g. <NA>"),
    ],
)
def test_binary_correct_rejects_anything_else_with_examples(values, shown):
    from learnops.errors import LearnopsError
    from learnops.irt.data import binary_correct

    with pytest.raises(LearnopsError, match="must be binary") as err:
        binary_correct(values)
    assert shown in str(err.value)


def test_parallel_encode_equals_serial_and_keeps_the_error_order(monkeypatch, sparse_sim):
    from learnops.errors import LearnopsError
    from learnops.irt import data

    df = sparse_sim.responses.iloc[:5000]
    serial = encode(df)
    monkeypatch.setattr(data, "PARALLEL_ENCODE_ROWS", 1)
    threaded = encode(df)
    for name in ("learner_ids", "item_ids", "learner", "item", "y"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(serial, name))
    bad = df.astype({"item_id": object, "learner_id": object})
    bad.iloc[3, bad.columns.get_loc("item_id")] = None
    with pytest.raises(LearnopsError, match="missing value.*'item_id'"):
        encode(bad)
    bad.iloc[4, bad.columns.get_loc("learner_id")] = None  # both bad: the learners first
    with pytest.raises(LearnopsError, match="missing value.*'learner_id'"):
        encode(bad)


def test_girth_agrees_on_dense_data():
    girth = pytest.importorskip("girth")
    s = simulate(2000, 15, seed=8)
    f = irt.fit(s.responses, "2pl", config=NO_PRIORS, se="none")
    wide = s.responses.pivot(index="learner_id", columns="item_id", values="correct")
    g = girth.twopl_mml(wide[f.items["item_id"]].to_numpy().T.astype(int))
    np.testing.assert_allclose(f.items["discrimination"], g["Discrimination"], atol=0.03)
    np.testing.assert_allclose(f.items["difficulty"], g["Difficulty"], atol=0.03)


def test_1pl_louis_block_se_matches_exact_hessian():
    s = simulate(1000, 12, seed=21, model="1pl")
    exact = irt.fit(s.responses, "1pl", se="exact")
    block = irt.fit(s.responses, "1pl", se="louis-block")
    assert exact.info["se_method"] == "exact" and block.info["se_method"] == "louis-block"
    a_exact = exact.items["discrimination_se"].iloc[0]
    assert block.items["discrimination_se"].iloc[0] == pytest.approx(a_exact, rel=0.03)
    np.testing.assert_allclose(
        block.items["difficulty_se"], exact.items["difficulty_se"], rtol=0.15
    )


def test_torch_float32_backend_matches_numpy():
    """The large-data kernel (torch embedding-bag, float32) gives the same fit as scipy."""
    pytest.importorskip("torch")
    s = simulate(3000, 150, per_learner=8, seed=31)  # sparse: below the dense-chunk cutoff
    enc = encode(s.responses)
    es = EStep(design_matrix(enc), *quadrature(61, 6.0), backend="torch")
    assert es.backend == "torch"
    pri = Priors(a=(0.0, 0.5), b=(0.0, 3.0))
    ref = run_em(enc, "2pl", priors=pri, se="none", backend="numpy")
    t32 = run_em(enc, "2pl", priors=pri, se="louis-block", backend="torch")
    assert t32.loglik == pytest.approx(ref.loglik, abs=0.05)
    np.testing.assert_allclose(t32.params.a, ref.params.a, atol=2e-3)
    np.testing.assert_allclose(t32.params.b, ref.params.b, atol=5e-3)
    np.testing.assert_allclose(t32.abilities, ref.abilities, atol=1e-3)


@pytest.mark.parametrize("per_learner", [None, 25])
def test_float32_fast_path_agrees_with_float64(monkeypatch, per_learner, sparse_sim):
    """Large problems run their EM iterations in float32 before float64 polishing; the result
    must match a pure float64 fit within the convergence tolerance (dense and sparse designs)."""
    data = simulate(3000, 40, seed=5).responses if per_learner is None else sparse_sim.responses
    exact = irt.fit(data, "2pl", priors=False)
    monkeypatch.setattr(estep, "FAST_MIN_RESPONSES", 1)
    fast = irt.fit(data, "2pl", priors=False)
    assert fast.converged
    np.testing.assert_allclose(
        fast.items["discrimination"], exact.items["discrimination"], atol=2e-3
    )
    np.testing.assert_allclose(fast.items["difficulty"], exact.items["difficulty"], atol=2e-3)
    assert fast.loglik == pytest.approx(exact.loglik, abs=1e-2)


@pytest.mark.parametrize("cache_rows", [1, 37, 4096])
def test_torch_blocks_give_the_whole_chunk_sums_bit_for_bit(cache_rows, monkeypatch):
    """The torch E-step in cache-sized blocks (the expected counts carried from block to block)
    equals one embedding-bag pass over the whole chunk exactly: loglik, counts, posteriors."""
    import torch
    from torch.nn.functional import embedding_bag

    from learnops.irt.em import initial_params
    from learnops.irt.params import item_logprobs

    monkeypatch.setattr(estep, "CACHE_ROWS", cache_rows)
    df = simulate(3000, 150, 7, seed=9).responses  # some items unseen by a block's learners
    enc = encode(df)
    theta, logw = quadrature(31, 6.0)
    es = EStep(design_matrix(enc), theta, logw, chunk_cells=1 << 16, backend="torch")
    lp, l1p = item_logprobs(initial_params(enc, "2pl"), theta)
    m32 = torch.from_numpy(np.vstack([lp, l1p]).astype(np.float32))
    assert len(es.chunks) > 1 and all(c.torch_idx is not None for c in es.chunks)
    for ch in es.chunks:
        xt = ch.x.T.tocsr()
        idx = torch.from_numpy(ch.x.indices.astype(np.int64))
        off = torch.from_numpy(ch.x.indptr[:-1].astype(np.int64))
        idx_t = torch.from_numpy(xt.indices.astype(np.int64))
        off_t = torch.from_numpy(xt.indptr[:-1].astype(np.int64))
        # the whole-chunk reference (float32 sums over all the chunk's rows at once)
        post = embedding_bag(idx, m32, off, mode="sum")
        post += torch.from_numpy(logw.astype(np.float32))
        lse = torch.logsumexp(post, dim=1, keepdim=True)
        post = torch.exp(post - lse)
        want = embedding_bag(idx_t, post, off_t, mode="sum").numpy().astype(np.float64)
        ll, counts, _ = estep._torch_chunk_fast(ch, m32, logw)
        assert ll == float(lse.sum(dtype=torch.float64))
        np.testing.assert_array_equal(counts, want)
        post64 = embedding_bag(idx, m32, off, mode="sum").numpy().astype(np.float64)
        ll64 = estep._posterior_inplace(post64, logw)
        want64 = embedding_bag(
            idx_t, torch.from_numpy(post64.astype(np.float32)), off_t, mode="sum"
        )
        ll_b, counts_b, post_b = estep._torch_chunk(ch, m32, logw)
        assert ll_b == ll64
        np.testing.assert_array_equal(counts_b, want64.numpy().astype(np.float64))
        np.testing.assert_array_equal(post_b, post64)
        ll_c, counts_c, none = estep._torch_chunk(ch, m32, logw, keep=False)
        assert none is None
        assert ll_c == ll64
        np.testing.assert_array_equal(counts_c, counts_b)
