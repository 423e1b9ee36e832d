"""Off-policy evaluation on a contextual-bandit simulation with a known target-policy value."""

from __future__ import annotations

import numpy as np
import pytest

from learnops.errors import LearnopsError
from learnops.evaluation import (
    cross_fit_rewards,
    doubly_robust,
    effective_sample_size,
    fit_reward_model,
    ips,
    off_policy_evaluation,
    snips,
)

K, D, POOL = 5, 3, 300
_g = np.random.default_rng(12345)
CONTEXTS = _g.normal(size=(POOL, D))  # x is drawn uniformly from this pool: E over x is exact
W_LOG = _g.normal(0, 0.6, size=(D, K))
W_TGT = _g.normal(0, 1.2, size=(D, K))
BETA = _g.normal(0, 1.0, size=(D, K))
INTERCEPT = np.linspace(0.0, 1.0, K)
NOISE_SD = 1.0
EPSILON = 0.3  # logging explores uniformly 30% of the time: propensities >= EPSILON / K


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mean_reward(x: np.ndarray) -> np.ndarray:
    """E[r | x, a] for every action: (n, K)."""
    return INTERCEPT + x @ BETA


# the target policy's value: mean over the context pool of sum_a pi(a|x) E[r|x,a]
TRUE_VALUE = float(np.mean(np.sum(softmax(CONTEXTS @ W_TGT) * mean_reward(CONTEXTS), axis=1)))


def simulate(rng: np.random.Generator, n: int):
    x = CONTEXTS[rng.integers(0, POOL, n)]
    p_all = (1 - EPSILON) * softmax(x @ W_LOG) + EPSILON / K
    a = (rng.uniform(size=(n, 1)) > p_all.cumsum(axis=1)).sum(axis=1).clip(max=K - 1)
    r = mean_reward(x)[np.arange(n), a] + rng.normal(0, NOISE_SD, n)
    return x, a, r, p_all[np.arange(n), a], softmax(x @ W_TGT)


def test_hand_computed_two_rows():
    r = np.array([1.0, 0.0])
    p_log = np.array([0.5, 0.25])
    pi = np.array([[1.0, 0.0], [0.5, 0.5]])
    a = np.array([0, 1])
    q = np.array([[0.8, 0.2], [0.6, 0.4]])
    # w = [2, 2]
    res = ips(r, p_log, pi, a)
    assert res.max_weight == pytest.approx(2.0)
    assert res.value == pytest.approx(1.0)  # mean(2*1, 2*0)
    assert res.se == pytest.approx(np.std([2.0, 0.0], ddof=1) / np.sqrt(2))
    assert res.ess == pytest.approx(2.0)
    assert snips(r, p_log, pi, a).value == pytest.approx(0.5)
    # DR terms: 0.8 + 2*(1-0.8) = 1.2 ; 0.5 + 2*(0-0.4) = -0.3
    assert doubly_robust(r, p_log, pi, a, q).value == pytest.approx(0.45)
    assert effective_sample_size([1.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)


def test_estimators_unbiased_with_nominal_coverage_and_dr_lower_variance():
    rng = np.random.default_rng(7)
    reps, n = 200, 1000
    est = {"ips": [], "snips": [], "dr": []}
    covered = {"ips": 0, "dr": 0}
    for i in range(reps):
        x, a, r, p_log, pi = simulate(rng, n)
        q = cross_fit_rewards(x, a, r, K, n_folds=2, seed=i)
        res = off_policy_evaluation(r, p_log, pi, a, q_hat=q)
        for name in est:
            est[name].append(res[name].value)
        for name in covered:
            covered[name] += res[name].ci_low <= TRUE_VALUE <= res[name].ci_high
    for name in ("ips", "dr"):
        e = np.asarray(est[name])
        mc_se = e.std(ddof=1) / np.sqrt(reps)
        bias = e.mean() - TRUE_VALUE
        cov = covered[name] / reps
        print(
            f"{name}: truth={TRUE_VALUE:.4f} bias={bias:+.4f} mc_se={mc_se:.4f} "
            f"sd={e.std(ddof=1):.4f} coverage={cov:.3f}"
        )
        assert abs(bias) < 3 * mc_se
        assert abs(cov - 0.95) <= 0.05
    s = np.asarray(est["snips"])
    print(f"snips: bias={s.mean() - TRUE_VALUE:+.4f} sd={s.std(ddof=1):.4f}")
    assert abs(s.mean() - TRUE_VALUE) < 0.05  # consistent; O(1/n) bias
    # a good (correctly specified) reward model removes most of the IPS variance
    assert np.var(est["dr"]) < 0.5 * np.var(est["ips"])


def test_reward_model_recovers_linear_rewards_and_is_deterministic():
    rng = np.random.default_rng(1)
    x, a, r, _, _ = simulate(rng, 20_000)
    model = fit_reward_model(x, a, r, K)
    pred = model.predict(CONTEXTS)
    rmse = np.sqrt(np.mean((pred - mean_reward(CONTEXTS)) ** 2, axis=0))
    assert np.all(rmse < 0.1)  # noise sd 1, ~4000 rows per action
    assert np.array_equal(pred, fit_reward_model(x, a, r, K).predict(CONTEXTS))
    xs, as_, rs = x[:1500], a[:1500], r[:1500]
    gbm = fit_reward_model(xs, as_, rs, K, kind="gbm", seed=3).predict(CONTEXTS)
    assert np.array_equal(
        gbm, fit_reward_model(xs, as_, rs, K, kind="gbm", seed=3).predict(CONTEXTS)
    )
    assert np.sqrt(np.mean((gbm - mean_reward(CONTEXTS)) ** 2)) < 0.6  # rough but informative
    # an action never logged predicts the mean reward
    lone = fit_reward_model(x[a != 2], a[a != 2], r[a != 2], K).predict(x[:3])
    assert np.allclose(lone[:, 2], r[a != 2].mean())


def test_snips_finite_when_weights_explode():
    rng = np.random.default_rng(2)
    n = 500
    r = rng.uniform(size=n)
    a = np.zeros(n, dtype=int)
    pi = np.tile([1.0, 0.0], (n, 1))
    p_log = np.full(n, 0.5)
    p_log[0] = 1e-12  # one logged action the logging policy almost never takes
    res_ips = ips(r, p_log, pi, a)
    res_sn = snips(r, p_log, pi, a)
    assert res_ips.value > 1e6 and res_ips.max_weight == pytest.approx(1e12)
    assert np.isfinite(res_sn.value) and r.min() <= res_sn.value <= r.max()
    assert res_sn.value == pytest.approx(r[0], abs=1e-6)  # dominated by the huge weight
    assert res_sn.ess == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.nan, "missing"),
        (0.0, "zero or negative"),
        (-0.1, "zero or negative"),
        (1.5, "at most 1"),
    ],
)
def test_bad_propensities_raise(bad, match):
    p_log = np.array([0.5, bad, 0.5])
    pi = np.full((3, 2), 0.5)
    with pytest.raises(LearnopsError, match=match):
        ips([1.0, 0.0, 1.0], p_log, pi, [0, 1, 0])


def test_other_input_errors():
    pi = np.full((2, 2), 0.5)
    with pytest.raises(LearnopsError, match="0..1"):
        ips([1.0, 0.0], [0.5, 0.5], pi, [0, 2])
    with pytest.raises(LearnopsError, match="sum to 1"):
        ips([1.0, 0.0], [0.5, 0.5], np.full((2, 2), 0.3), [0, 1])
    with pytest.raises(LearnopsError, match="reward model"):
        doubly_robust([1.0, 0.0], [0.5, 0.5], pi, [0, 1], np.zeros((2, 3)))
    with pytest.raises(LearnopsError, match="probability 0"):
        snips([1.0, 0.0], [0.5, 0.5], np.tile([0.0, 1.0], (2, 1)), [0, 0])


# --- issue 12 (6): learner-clustered errors, grouped cross-fitting, coverage, decision tables ---


def _clustered_logs(
    rng: np.random.Generator,
    n_learners: int,
    per_learner: int,
    eps_log: float,
    learner_sd: float = 1.0,
    contexts_per_learner: int | None = None,
):
    """Logs of ``n_learners`` learners with ``per_learner`` decisions each: contexts from the pool
    (with ``contexts_per_learner``, each learner keeps revisiting a few of its own), a learner
    random effect on every reward (rows of one learner are correlated), actions from the
    ε-mixture of the softmax logging policy; its whole distribution is returned."""
    n = n_learners * per_learner
    g = np.repeat(np.arange(n_learners), per_learner)
    if contexts_per_learner is None:
        idx = rng.integers(0, POOL, n)
    else:
        own = rng.integers(0, POOL, (n_learners, contexts_per_learner))
        idx = own[g, rng.integers(0, contexts_per_learner, n)]
    x = CONTEXTS[idx]
    p_all = (1 - eps_log) * softmax(x @ W_LOG) + eps_log / K
    a = (rng.uniform(size=(n, 1)) > p_all.cumsum(axis=1)).sum(axis=1).clip(max=K - 1)
    u = rng.normal(0, learner_sd, n_learners)[g]
    r = mean_reward(x)[np.arange(n), a] + u + rng.normal(0, 0.5, n)
    return x, a, r, p_all, g


def _eps_greedy_truth(eps: float) -> float:
    """The exact value of the ε-greedy policy on the target scores: mean over the context pool
    of Σ_a π(a|x) E[r|x,a] (the learner effect has mean 0)."""
    from learnops.policy import epsilon_greedy

    pi = epsilon_greedy(CONTEXTS @ W_TGT, eps)
    return float(np.mean(np.sum(pi * mean_reward(CONTEXTS), axis=1)))


def test_clustered_se_equals_statsmodels_cluster_se():
    import statsmodels.api as sm

    from learnops.evaluation.ope import cluster_se

    rng = np.random.default_rng(3)
    n_learners = 37
    sizes = rng.integers(1, 30, n_learners)  # unequal cluster sizes, singletons included
    g = np.repeat([f"learner-{i:03d}" for i in range(n_learners)], sizes)
    n = g.size
    x = CONTEXTS[rng.integers(0, POOL, n)]
    a = rng.integers(0, K, n)
    p_log = rng.uniform(0.05, 0.9, n)
    pi = softmax(x @ W_TGT)
    r = rng.normal(size=n) + np.repeat(rng.normal(size=n_learners), sizes)
    q = mean_reward(x)
    ones = np.ones(n)

    def sm_se(terms):
        fit = sm.OLS(terms, ones).fit(
            cov_type="cluster", cov_kwds={"groups": np.unique(g, return_inverse=True)[1]}
        )
        return float(fit.bse[0])

    w = pi[np.arange(n), a] / p_log
    res = ips(r, p_log, pi, a, groups=g)
    assert res.se == pytest.approx(sm_se(w * r), rel=1e-10)
    assert res.n_learners == n_learners and res.n == n
    dr_terms = np.sum(pi * q, axis=1) + w * (r - q[np.arange(n), a])
    res_dr = doubly_robust(r, p_log, pi, a, q, groups=g)
    assert res_dr.value == pytest.approx(dr_terms.mean(), rel=1e-12)
    assert res_dr.se == pytest.approx(sm_se(dr_terms), rel=1e-10)
    res_sn = snips(r, p_log, pi, a, groups=g)
    psi = w * (r - res_sn.value) / w.mean()  # the linearized influence function of SNIPS
    assert res_sn.se == pytest.approx(sm_se(psi), rel=1e-10)
    t = rng.normal(size=n)
    assert cluster_se(t - t.mean(), g) == pytest.approx(sm_se(t), rel=1e-12)
    # one learner per row: the clustered SE is the row-independent one (IPS, DR) ...
    solo = np.arange(n)
    assert ips(r, p_log, pi, a, groups=solo).se == pytest.approx(ips(r, p_log, pi, a).se)
    # ... and without groups nothing changed
    assert ips(r, p_log, pi, a).n_learners is None
    assert np.isnan(cluster_se(t, np.zeros(n)))  # a single cluster has no variance estimate


def test_grouped_cross_fitting_keeps_each_learner_out_of_its_own_model():
    rng = np.random.default_rng(4)
    x, a, r, _, g = _clustered_logs(rng, 40, 12, 0.3)
    q = cross_fit_rewards(x, a, r, K, n_folds=5, seed=1, groups=g)
    assert np.array_equal(q, cross_fit_rewards(x, a, r, K, n_folds=5, seed=1, groups=g))
    # changing one learner's rewards cannot change the predictions of that learner's rows
    r2 = r.copy()
    r2[g == 7] += 100.0
    q2 = cross_fit_rewards(x, a, r2, K, n_folds=5, seed=1, groups=g)
    assert np.array_equal(q[g == 7], q2[g == 7])
    assert not np.allclose(q[g != 7], q2[g != 7])  # the other folds did learn from it
    # row folds (no groups) mix the learner's rows into the models predicting it
    q3 = cross_fit_rewards(x, a, r, K, n_folds=5, seed=1)
    q4 = cross_fit_rewards(x, a, r2, K, n_folds=5, seed=1)
    assert not np.allclose(q3[g == 7], q4[g == 7])
    with pytest.raises(LearnopsError, match="at least 2 learners"):
        cross_fit_rewards(x, a, r, K, groups=np.zeros(len(r)))


def test_ope_recovers_a_known_epsilon_greedy_value_inside_its_interval():
    import pandas as pd

    from learnops.contracts import ACTIONS, FEATURES, LOGGING_PROB_COLUMNS
    from learnops.evaluation.ope import evaluate_policy, logged_decisions
    from learnops.policy import epsilon_greedy

    rng = np.random.default_rng(11)
    x, a, r, p_all, g = _clustered_logs(rng, 300, 10, 0.3, learner_sd=0.3)
    n = r.size
    truth = _eps_greedy_truth(0.1)
    feats = np.column_stack([x, rng.normal(size=(n, len(FEATURES) - D))])  # 15 irrelevant
    table = pd.DataFrame(feats, columns=list(FEATURES))
    table["learner_hash"] = [f"h{i}" for i in g]
    table["action"] = np.asarray(ACTIONS)[a]
    table["propensity"] = p_all[np.arange(n), a]
    table[list(LOGGING_PROB_COLUMNS)] = p_all
    table["next_engagement"] = r
    table.loc[[3, 50], "next_engagement"] = np.nan  # outcomes not posted yet
    logged = logged_decisions(table)
    assert logged.dropped_missing_reward == 2 and logged.n == n - 2
    assert logged.n_learners == 300
    pi = epsilon_greedy(x[logged.rows] @ W_TGT, 0.1)
    value = evaluate_policy(logged, pi, seed=2, kind="ridge")
    doc = value.to_dict()
    assert set(doc["estimates"]) == {"ips", "snips", "dr"}
    assert doc["n"] == n - 2 and doc["n_learners"] == 300 and doc["max_weight"] > 1
    assert 0 < doc["ess"] < n
    for name, est in value.estimates.items():
        print(f"{name}: {est.value:.4f} [{est.ci_low:.4f}, {est.ci_high:.4f}] truth {truth:.4f}")
        assert est.ci_low <= truth <= est.ci_high, name
        assert est.n_learners == 300
    dr = value.estimates["dr"]
    assert dr.se < value.estimates["ips"].se
    # the logged policy's own value: its observed mean
    logged_truth = float(np.mean(np.sum(p_all * mean_reward(x), axis=1)))
    assert value.observed["ci_low"] <= logged_truth + 0.05  # (x-sample mean, loose)
    assert abs(value.observed["value"] - r[logged.rows].mean()) < 1e-12


def test_clustered_intervals_cover_at_the_nominal_rate():
    """200 small replicates (50 learners x 10 decisions; each learner revisits 2 situations and
    has its own reward offset, so its decisions are strongly correlated): the
    learner-clustered 95% intervals of DR and IPS cover the exact ε-greedy value ~95% of the
    time; row-independent intervals would not."""
    from learnops.policy import epsilon_greedy

    rng = np.random.default_rng(2024)
    truth = _eps_greedy_truth(0.1)
    reps = 200
    covered = {"ips": 0, "dr": 0, "dr_rows": 0}
    est = {"ips": [], "dr": []}
    for i in range(reps):
        x, a, r, p_all, g = _clustered_logs(
            rng, 50, 10, 0.3, learner_sd=1.5, contexts_per_learner=2
        )
        p_log = p_all[np.arange(r.size), a]
        pi = epsilon_greedy(x @ W_TGT, 0.1)
        q = cross_fit_rewards(x, a, r, K, n_folds=2, seed=i, groups=g)
        res = off_policy_evaluation(r, p_log, pi, a, q_hat=q, groups=g)
        for name in ("ips", "dr"):
            covered[name] += res[name].ci_low <= truth <= res[name].ci_high
            est[name].append(res[name].value)
        rows = doubly_robust(r, p_log, pi, a, q)
        covered["dr_rows"] += rows.ci_low <= truth <= rows.ci_high
    cov = {k: v / reps for k, v in covered.items()}
    for name in ("ips", "dr"):
        e = np.asarray(est[name])
        print(
            f"{name}: truth={truth:.4f} bias={e.mean() - truth:+.4f} "
            f"mc_se={e.std(ddof=1) / np.sqrt(reps):.4f} coverage={cov[name]:.3f}"
        )
        assert abs(e.mean() - truth) < 3 * e.std(ddof=1) / np.sqrt(reps)
        assert 0.90 <= cov[name] <= 0.99, (name, cov[name])
    print(f"dr with row-independent errors: coverage={cov['dr_rows']:.3f}")
    assert cov["dr_rows"] < 0.90  # learner effects make row-independent intervals too narrow


def test_coverage_check_refuses_uncovered_target_policies():
    from learnops.evaluation.ope import check_coverage
    from learnops.policy import epsilon_greedy

    scores = np.array([[3.0, 1, 0, 0, 0], [0, 2.0, 1, 0, 0], [0, 0, 0, 0, 1.0]])
    one_hot_logging = np.eye(K)[[0, 0, 4]]  # a logging policy without exploration
    check_coverage(epsilon_greedy(scores, 0.0), np.full((3, K), 0.2))  # full support: fine
    check_coverage(np.eye(K)[[0, 0, 4]], one_hot_logging)  # same deterministic choices: fine
    with pytest.raises(LearnopsError, match=r"1 of 3 rows.*adjust_difficulty \(1 rows\)"):
        check_coverage(epsilon_greedy(scores, 0.0), one_hot_logging)
    with pytest.raises(LearnopsError, match="3 of 3 rows"):  # ε > 0 targets need full support
        check_coverage(epsilon_greedy(scores, 0.05), one_hot_logging)


def _table(n=6, **cols):
    import pandas as pd

    from learnops.contracts import ACTIONS, FEATURES, LOGGING_PROB_COLUMNS

    t = pd.DataFrame(np.ones((n, len(FEATURES))), columns=list(FEATURES))
    t["learner_hash"] = [f"h{i % 3}" for i in range(n)]
    t["action"] = [ACTIONS[i % 2] for i in range(n)]
    t["propensity"] = 0.2
    t[list(LOGGING_PROB_COLUMNS)] = 0.2
    t["next_engagement"] = np.linspace(0.1, 0.6, n)
    for k, v in cols.items():
        t[k] = v
    return t


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"propensity": [np.nan, 0.2, 0.2, 0.2, 0.2, 0.2]}, "1 of 6 decision.*no propensity"),
        ({"p_take_break": [0.2, np.nan, 0.2, 0.2, 0.2, 0.2]}, "no logging distribution"),
        ({"propensity": 0.3}, "differs from p_<logged action>"),
        ({"action": "dance"}, "unknown logged action"),
        ({"next_engagement": np.nan}, "none of the 6 decision"),
        ({"learner_hash": None}, "no learner_hash"),
        ({"hint_rate": np.nan}, "missing or non-numeric features"),
        ({"next_engagement": "high"}, "not numeric"),
    ],
)
def test_logged_decisions_errors_are_clear(change, match):
    from learnops.evaluation.ope import logged_decisions

    with pytest.raises(LearnopsError, match=match):
        logged_decisions(_table(**change))


def test_logged_decisions_without_distribution_and_boolean_rewards():
    from learnops.contracts import LOGGING_PROB_COLUMNS
    from learnops.evaluation.ope import logged_decisions

    t = _table().drop(columns=list(LOGGING_PROB_COLUMNS))
    t["session_completed"] = [True, False, None, True, True, False]
    t["session_completed"] = t["session_completed"].astype("boolean")
    logged = logged_decisions(t, "session_completed")
    assert logged.p_all is None and logged.dropped_missing_reward == 1
    assert logged.r.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert logged.rows.tolist() == [0, 1, 3, 4, 5]
    with pytest.raises(LearnopsError, match="lacks column.*nope"):
        logged_decisions(t, "nope")
