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
