"""Learner models (learnops.learner_models): no look-ahead, parameter recovery, agreement with
scikit-learn and with the IRT engine's EAP scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from learnops.config import IrtConfig, SimulateConfig
from learnops.learner_models.base import prepare, prior_counts
from learnops.learner_models.best_lr import BestLr
from learnops.learner_models.elo import Elo
from learnops.learner_models.irt_static import StaticIrt
from learnops.learner_models.pfa import Pfa

IRT_CFG = IrtConfig(quad_points=31, max_iter=100, tol=1e-4)


@pytest.fixture(scope="module")
def responses() -> pd.DataFrame:
    from learnops.data.simulate import simulate

    cfg = SimulateConfig(
        n_learners=60, n_items=30, n_modules=3, sessions_per_learner=3, items_per_session=10
    )
    return simulate(cfg, seed=3).responses


@pytest.fixture(scope="module")
def fitted(responses):
    irt = StaticIrt(IRT_CFG).fit(responses)
    return {
        "irt": irt,
        "elo": Elo(alpha=0.6, beta=0.05).fit(responses),
        "pfa": Pfa().fit(responses),
        "best_lr": BestLr(irt, fit_irt=False).fit(responses),
    }


def _perturb_future(responses: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """Each learner's later half: answers flipped, items replaced, order shuffled (still after
    the earlier half). Returns the table and the response ids of the untouched earlier rows."""
    rng = np.random.default_rng(seed)
    df = responses.sort_values(["learner_hash", "timestamp"], kind="stable").reset_index(drop=True)
    pos = df.groupby("learner_hash").cumcount()
    size = df.groupby("learner_hash")["learner_hash"].transform("size")
    future = (pos >= size // 2).to_numpy()
    out = df.copy()
    out.loc[future, "correct"] = 1 - out.loc[future, "correct"]
    same_module = (
        out.loc[future]
        .groupby("module")["item_id"]
        .transform(lambda s: rng.permutation(s.to_numpy()))
    )
    out.loc[future, "item_id"] = same_module
    for _, idx in out.loc[future].groupby("learner_hash").groups.items():
        out.loc[idx, "timestamp"] = rng.permutation(out.loc[idx, "timestamp"].to_numpy())
    out = out.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # row order too
    return out, set(df.loc[~future, "response_id"])


@pytest.mark.parametrize("name", ["irt", "elo", "pfa", "best_lr"])
def test_no_look_ahead(responses, fitted, name):
    model = fitted[name]
    before = pd.Series(model.predict(responses).p, index=responses["response_id"])
    changed, past = _perturb_future(responses, seed=1)
    after = pd.Series(model.predict(changed).p, index=changed["response_id"])
    ids = sorted(past)
    np.testing.assert_allclose(after[ids].to_numpy(), before[ids].to_numpy(), rtol=0, atol=1e-12)
    # and the perturbation did reach the later predictions (the test can fail)
    rest = sorted(set(responses["response_id"]) - past)
    assert np.abs(after[rest].to_numpy() - before[rest].to_numpy()).max() > 1e-3


def test_prior_counts_by_hand():
    df = pd.DataFrame(
        {
            "learner_id": ["a", "a", "b", "a", "b", "a"],
            "item_id": ["i1", "i2", "i1", "i3", "i2", "i1"],
            "module": ["m1", "m2", "m1", "m1", "m1", "m2"],
            "correct": [1, 0, 1, 1, 0, 1],
        }
    )
    seq = prepare(df)
    s, f = prior_counts(seq)
    sm, fm = prior_counts(seq, seq.module)
    # sorted: a: rows 0,1,3,5 ; b: rows 2,4
    np.testing.assert_array_equal(seq.order, [0, 1, 3, 5, 2, 4])
    np.testing.assert_array_equal(s, [0, 1, 1, 2, 0, 1])
    np.testing.assert_array_equal(f, [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(sm, [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(fm, [0, 0, 0, 1, 0, 0])


def test_missing_modules_form_one_module_and_pfa_still_fits():
    """Imported answers without modules (e.g. LSAT7: a null module column) are one module."""
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "learner_id": rng.integers(0, 40, n).astype(str),
            "item_id": rng.integers(0, 5, n).astype(str),
            "module": pd.Series([None] * n, dtype=object),
            "correct": rng.integers(0, 2, n),
        }
    )
    seq = prepare(df)
    assert len(seq.module_ids) == 1 and (seq.module == 0).all()
    p = Pfa().fit(df).predict(df).p
    assert np.isfinite(p).all() and len(p) == n


def test_static_irt_equals_eap_scoring_on_the_prefix(responses, fitted):
    from learnops import irt

    model = fitted["irt"]
    pred = model.predict(responses)
    df = responses.assign(theta=pred.ability, se=pred.ability_se)
    df = df.sort_values(["learner_hash", "timestamp"], kind="stable")
    checked = 0
    for _, rows in list(df.groupby("learner_hash"))[:6]:
        assert rows["theta"].iloc[0] == pytest.approx(0.0, abs=1e-9)  # no data: the prior mean
        for k in (1, 3, len(rows) // 2, len(rows) - 1):
            prefix = rows.iloc[:k][["learner_hash", "item_id", "correct"]]
            ref = irt.score(
                model.fit_.items,
                prefix,
                quad_points=IRT_CFG.quad_points,
                quad_range=IRT_CFG.quad_range,
            )
            assert rows["theta"].iloc[k] == pytest.approx(ref["theta"].iloc[0], abs=1e-8)
            assert rows["se"].iloc[k] == pytest.approx(ref["theta_se"].iloc[0], abs=1e-8)
            checked += 1
    assert checked >= 20


def test_elo_recovers_rasch_difficulties_and_abilities():
    from learnops.irt.sim import simulate

    sim = simulate(800, 40, model="1pl", seed=5)
    r = sim.responses.sample(frac=1.0, random_state=0).reset_index(drop=True)  # random order
    model = Elo(alpha=1.0, beta=0.05).fit(r)
    b = model.difficulty.reindex(sim.items["item_id"]).to_numpy()
    true_b = sim.items["difficulty"].to_numpy()
    assert np.corrcoef(b, true_b)[0, 1] > 0.97
    slope = np.polyfit(true_b, b, 1)[0]
    assert 0.75 < slope < 1.25
    # each learner's rating after all 40 answers tracks the true ability
    pred = model.predict(r)
    last = r.assign(theta=pred.ability, p=pred.p).groupby("learner_id").tail(1)
    after = last["theta"] + model.step(np.full(len(last), 39.0)) * (last["correct"] - last["p"])
    true = pd.Series(sim.theta, index=sim.responses["learner_id"].unique())
    assert np.corrcoef(after, true[last["learner_id"]].to_numpy())[0, 1] > 0.85


def _pfa_data(beta, gamma, rho, n_learners, length, seed):
    rng = np.random.default_rng(seed)
    k = len(beta)
    s = np.zeros((n_learners, k))
    f = np.zeros((n_learners, k))
    rows = []
    for t in range(length):
        m = rng.integers(0, k, n_learners)
        lrn = np.arange(n_learners)
        p = expit(beta[m] + gamma[m] * s[lrn, m] + rho[m] * f[lrn, m])
        y = (rng.random(n_learners) < p).astype(int)
        s[lrn, m] += y
        f[lrn, m] += 1 - y
        rows.append(
            pd.DataFrame(
                {
                    "learner_id": [f"u{i:05d}" for i in lrn],
                    "item_id": [f"m{j}-q" for j in m],
                    "module": [f"m{j}" for j in m],
                    "correct": y,
                    "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=t),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_pfa_recovers_known_parameters():
    beta = np.array([-0.8, 0.0, 0.6])
    gamma = np.array([0.25, 0.12, 0.05])
    rho = np.array([-0.10, 0.15, -0.20])
    df = _pfa_data(beta, gamma, rho, n_learners=3000, length=24, seed=2)
    coef = Pfa(C=1e6).fit(df).coef
    np.testing.assert_allclose(coef["intercept"], beta, atol=0.08)
    np.testing.assert_allclose(coef["success"], gamma, atol=0.03)
    np.testing.assert_allclose(coef["failure"], rho, atol=0.03)


def test_best_lr_equals_sklearn_on_a_design_built_by_hand(responses, fitted):
    from sklearn.linear_model import LogisticRegression

    from learnops.irt.scoring import item_params

    model = fitted["best_lr"]
    irt = fitted["irt"]
    df = responses.sort_values(["learner_hash", "timestamp"], kind="stable").reset_index(drop=True)
    theta = irt.predict(df).ability  # checked against irt.score by the test above
    params = item_params(irt.fit_.items)
    pos = pd.Index(irt.fit_.items["item_id"]).get_indexer(df["item_id"])
    modules = sorted(df["module"].unique())
    x = np.zeros((len(df), 5 + 3 * len(modules)))
    counts: dict = {}
    for i, row in enumerate(df.itertuples()):
        s = sum(v[0] for k, v in counts.items() if k[0] == row.learner_hash)
        f = sum(v[1] for k, v in counts.items() if k[0] == row.learner_hash)
        sm, fm = counts.get((row.learner_hash, row.module), (0, 0))
        a, d = params.a[pos[i]], params.d[pos[i]]
        j = modules.index(row.module)
        x[i, :5] = [a * theta[i] + d, theta[i], -d / a, np.log1p(s), np.log1p(f)]
        x[i, 5 + j] = 1.0
        x[i, 5 + len(modules) + j] = np.log1p(sm)
        x[i, 5 + 2 * len(modules) + j] = np.log1p(fm)
        counts[(row.learner_hash, row.module)] = (sm + row.correct, fm + 1 - row.correct)
    ref = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200, tol=1e-8)
    ref.fit(x, df["correct"].to_numpy())
    np.testing.assert_allclose(model.coef.iloc[1:].to_numpy(), ref.coef_[0], atol=1e-5)
    np.testing.assert_allclose(model.predict(df).p, ref.predict_proba(x)[:, 1], atol=1e-6)


def test_unknown_items_and_bad_answers_are_clear_errors(fitted, responses):
    from learnops.errors import LearnopsError

    bad = responses.head(5).assign(item_id="nope")
    with pytest.raises(LearnopsError, match="not seen in fitting"):
        fitted["elo"].predict(bad)
    with pytest.raises(LearnopsError, match="correct must be 0 or 1"):
        prepare(responses.head(3).assign(correct=[0, 2, 1]))


@pytest.mark.parametrize("name", ["irt", "elo"])
def test_ability_asof_uses_only_earlier_answers(responses, fitted, name):
    from learnops.learner_models.ability import ability_asof

    model = fitted[name]
    df = responses.sort_values(["learner_hash", "timestamp"], kind="stable")
    picks = []
    for lh, rows in list(df.groupby("learner_hash"))[:5]:
        for k in (0, 2, len(rows) // 2, len(rows)):
            t = (
                rows["timestamp"].iloc[k]
                if k < len(rows)
                else rows["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
            )
            picks.append((lh, t, rows.iloc[:k]))
    queries = pd.DataFrame(picks, columns=["learner_hash", "timestamp", "prefix"])
    got = ability_asof(model, responses, queries)
    for (_lh, _t, prefix), (_, row) in zip(picks, got.iterrows(), strict=True):
        if prefix.empty:
            assert row["ability"] == pytest.approx(0.0, abs=1e-9)
            continue
        # the estimate after exactly these answers: a probe row after them, read before it
        after = prefix["timestamp"].iloc[-1] + pd.Timedelta(1, "s")
        probe = prefix.iloc[[-1]].assign(timestamp=after)
        ref = model.predict(pd.concat([prefix, probe], ignore_index=True)).ability[-1]
        assert row["ability"] == pytest.approx(ref, abs=1e-9)


def test_ability_model_is_validated():
    from pydantic import ValidationError

    assert IrtConfig().ability_model == "irt"
    assert IrtConfig(ability_model="best_lr").ability_model == "best_lr"
    with pytest.raises(ValidationError):
        IrtConfig(ability_model="dkt")


def test_ability_command_writes_one_row_per_learner_and_refuses_unknown_models(responses, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "responses.parquet"
    responses.to_parquet(data)
    params = Path(__file__).resolve().parents[1] / "params.ci.yaml"

    def learnops(*args):
        code = (
            f"import sys; sys.argv = ['learnops', *{args!r}]\nfrom learnops.cli import main\nmain()"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    out = tmp_path / "ability.csv"
    done = learnops(
        "ability", str(data), "--out", str(out), "--model", "elo", "--params", str(params)
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert len(table) == responses["learner_hash"].nunique()
    assert np.isfinite(table[["ability", "ability_se"]].to_numpy()).all()
    bad = learnops(
        "ability", str(data), "--out", str(out), "--model", "dkt", "--params", str(params)
    )
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "ability model must be one of" in lines[0]


def _categorical(responses: pd.DataFrame) -> pd.DataFrame:
    """``responses`` as the export reads answers back: ids categorical (with a category that
    occurs in no row), ``correct`` int8."""
    out = responses.copy()
    for col in ("learner_hash", "item_id", "module"):
        values = out[col].astype(str)
        out[col] = pd.Categorical(values, categories=["zz-unused", *sorted(set(values))])
    out["correct"] = out["correct"].astype(np.int8)
    return out


def test_prepare_is_compact_and_the_same_on_categorical_ids(responses):
    plain = prepare(responses)
    cat = prepare(_categorical(responses))
    n = len(responses)
    for seq in (plain, cat):
        assert seq.learner.dtype == np.int32 and seq.item.dtype == np.int32
        assert seq.order.dtype == np.int32 and seq.n_prior.dtype == np.int32
        assert seq.y.dtype == np.int8 and seq.module.dtype == np.int16
        assert seq.item_names.dtype == object and seq.learner_ids.dtype == object
        assert sum(getattr(seq, a).nbytes for a in ("order", "learner", "item", "module", "y",
                                                    "n_prior")) == 19 * n  # fmt: skip
    for name in ("order", "learner", "learner_ids", "item_ids", "module", "module_ids", "y",
                 "n_prior", "start"):  # fmt: skip
        np.testing.assert_array_equal(getattr(cat, name), getattr(plain, name), err_msg=name)
    assert "zz-unused" not in set(cat.learner_ids) | set(cat.item_names)
    # the sorted rows by hand: learner, then time; a learner's first row has no earlier rows
    rows = responses.iloc[plain.order]
    assert (rows["learner_hash"].to_numpy() == plain.learner_ids[plain.learner]).all()
    assert (rows["item_id"].astype(str).to_numpy() == plain.item_ids).all()
    assert (rows["correct"].to_numpy() == plain.y).all()
    assert (plain.n_prior == rows.groupby("learner_hash", sort=False).cumcount().to_numpy()).all()


def test_prepare_refuses_answers_other_than_0_or_1(responses):
    from learnops.errors import LearnopsError

    for bad in (2, -1):
        df = responses.head(20).copy()
        df.loc[3, "correct"] = bad
        with pytest.raises(LearnopsError, match="correct must be 0 or 1"):
            prepare(df)
    with pytest.raises(LearnopsError, match="correct must be 0 or 1"):
        prepare(responses.head(20).assign(correct=0.5))


@pytest.mark.parametrize("unseen", [False, True])
def test_tune_on_one_prepared_table_is_tune_on_the_two_tables(responses, unseen):
    """Elo tuned on the sides of one prepared table (the export's path) gives the grid and the
    difficulties of ``tune`` on the two sides as tables, to the bit; also when a validation
    learner answers an item no training learner answered (those answers are not scored)."""
    from learnops.data.splits import learner_split_mask
    from learnops.learner_models.elo import tune, tune_sequences

    grid_a, grid_b = (0.4, 0.8, 1.6), (0.0, 0.05)
    val = learner_split_mask(responses["learner_hash"], 0.3, 5, "elo")
    if unseen:  # two answers of validation learners to a new item
        responses = responses.copy()
        responses.loc[np.flatnonzero(val)[[3, 40]], "item_id"] = "new-item"
    want, want_grid = tune(responses.loc[~val], responses.loc[val], grid_a, grid_b)
    seq = prepare(_categorical(responses))
    got, got_grid = tune_sequences(seq, val[seq.order], grid_a, grid_b)
    pd.testing.assert_frame_equal(got_grid, want_grid, check_exact=True)
    assert (got.alpha, got.beta) == (want.alpha, want.beta)
    pd.testing.assert_series_equal(got.difficulty, want.difficulty, check_exact=True)
    assert want_grid["log_loss"].nunique() == len(want_grid)  # the grid points do differ
