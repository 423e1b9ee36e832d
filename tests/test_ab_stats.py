"""A/B statistics against scipy/statsmodels: Welch, two-proportion z, Holm, SRM, power, CUPED."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from learnops.ab import analyze
from learnops.ab.stats import (
    cuped_adjust,
    cuped_theta,
    holm,
    mde,
    power_two_sample,
    sample_size,
    srm_test,
    two_proportion_test,
    welch_test,
)

TOL = dict(rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("n_t", "n_c", "sd_t", "sd_c", "shift", "alpha"),
    [(30, 45, 1.0, 2.5, 0.4, 0.05), (200, 80, 0.1, 0.12, 0.03, 0.05), (7, 5, 3.0, 0.5, 2, 0.1)],
)
def test_welch_matches_scipy(n_t, n_c, sd_t, sd_c, shift, alpha):
    rng = np.random.default_rng(n_t + n_c)
    a = rng.normal(shift, sd_t, n_t)
    b = rng.normal(0, sd_c, n_c)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    res = welch_test(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size, alpha=alpha)
    assert float(res["statistic"]) == pytest.approx(ref.statistic, **TOL)
    assert float(res["p_value"]) == pytest.approx(ref.pvalue, **TOL)
    assert float(res["df"]) == pytest.approx(ref.df, **TOL)
    assert float(res["ci_low"]) == pytest.approx(ci.low, **TOL)
    assert float(res["ci_high"]) == pytest.approx(ci.high, **TOL)
    assert float(res["diff"]) == pytest.approx(a.mean() - b.mean(), **TOL)


def test_welch_is_vectorized():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 20)), rng.normal(0.3, 2, size=(50, 31))
    res = welch_test(a.mean(1), a.var(1, ddof=1), 20, b.mean(1), b.var(1, ddof=1), 31)
    ref = stats.ttest_ind(a, b, axis=1, equal_var=False)
    np.testing.assert_allclose(res["p_value"], ref.pvalue, rtol=1e-9)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(45, 100, 30, 110), (3, 20, 9, 25)])
def test_two_proportion_matches_statsmodels(x1, n1, x2, n2):
    res = two_proportion_test(x1, n1, x2, n2, alpha=0.05)
    z, p = proportions_ztest([x1, x2], [n1, n2])
    lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="wald", compare="diff")
    assert float(res["statistic"]) == pytest.approx(z, **TOL)
    assert float(res["p_value"]) == pytest.approx(p, **TOL)
    assert float(res["ci_low"]) == pytest.approx(lo, **TOL)
    assert float(res["ci_high"]) == pytest.approx(hi, **TOL)


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(2)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 12))
        p[rng.integers(0, p.size)] = p[0]  # ties
        ref = multipletests(p, alpha=0.05, method="holm")[1]
        np.testing.assert_allclose(holm(p), ref, rtol=1e-12, atol=1e-15)
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], multipletests([0.01, 0.02], method="holm")[1])


def _events(rng, n_per, effect=0.0, rows=3, groups=("gpt4", "ml", "hybrid")):
    """Decision-level events: learner effect + several rows per learner."""
    recs = []
    for g in groups:
        u = rng.normal(0.5, 0.1, n_per)
        k = rng.integers(1, rows + 1, n_per)
        for i in range(n_per):
            lift = effect if g == "ml" else 0.0
            for _ in range(k[i]):
                recs.append(
                    (
                        f"{g}-{i}",
                        g,
                        u[i] + lift + rng.normal(0, 0.1),
                        rng.uniform(),
                        float(rng.uniform() < 0.6 + lift),
                    )
                )
    return pd.DataFrame(recs, columns=["learner_id", "group", "engagement", "accuracy", "success"])


def test_analyze_matches_scipy_and_statsmodels_at_learner_level():
    rng = np.random.default_rng(3)
    ev = _events(rng, 150, effect=0.03)
    res = analyze(ev, control="gpt4", alpha=0.05, min_sample_size=10)
    means = ev.groupby(["learner_id", "group"], as_index=False)[
        ["engagement", "accuracy", "success"]
    ].mean()
    ref_p = []
    for c in res["comparisons"]:
        a = means.loc[means.group == c["treatment"], c["metric"]].to_numpy()
        b = means.loc[means.group == c["control"], c["metric"]].to_numpy()
        ref = stats.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert c["test"] == "welch_t"
        assert (c["n_treatment"], c["n_control"]) == (a.size, b.size)
        assert c["p_value"] == pytest.approx(ref.pvalue, **TOL)
        assert c["ci_low"] == pytest.approx(ci.low, **TOL)
        assert c["ci_high"] == pytest.approx(ci.high, **TOL)
        assert c["mean_treatment"] == pytest.approx(a.mean(), **TOL)
        ref_p.append(ref.pvalue)
    ref_adj = multipletests(ref_p, alpha=0.05, method="holm")[1]
    got = [c["p_adjusted"] for c in res["comparisons"]]
    np.testing.assert_allclose(got, ref_adj, rtol=1e-9)
    assert [c["significant"] for c in res["comparisons"]] == list(ref_adj < 0.05)


def test_analyze_binary_one_row_per_learner_uses_z_test():
    rng = np.random.default_rng(4)
    ev = _events(rng, 300, effect=0.1, rows=1)
    res = analyze(ev, metrics=["success"], min_sample_size=10)
    for c in res["comparisons"]:
        x = ev.groupby("group")["success"].agg(["sum", "count"])
        z, p = proportions_ztest(
            [x.loc[c["treatment"], "sum"], x.loc["gpt4", "sum"]],
            [x.loc[c["treatment"], "count"], x.loc["gpt4", "count"]],
        )
        assert c["test"] == "two_proportion_z"
        assert c["p_value"] == pytest.approx(p, **TOL)
        assert c["statistic"] == pytest.approx(z, **TOL)


def test_srm_matches_scipy_and_flags_skew():
    fair = srm_test(
        {"ml": 4030, "gpt4": 3985, "hybrid": 1985}, {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
    )
    ref = stats.chisquare([4030, 3985, 1985], [4000, 4000, 2000])
    assert fair["chi2"] == pytest.approx(ref.statistic, **TOL)
    assert fair["p_value"] == pytest.approx(ref.pvalue, **TOL)
    assert not fair["mismatch"]
    skewed = srm_test({"ml": 4300, "gpt4": 3800, "hybrid": 1900}, {"ml": 2, "gpt4": 2, "hybrid": 1})
    assert skewed["mismatch"] and skewed["p_value"] < 1e-3
    # default planned split is equal
    assert srm_test({"a": 500, "b": 500})["p_value"] == pytest.approx(1.0)
    assert srm_test({"a": 560, "b": 440})["mismatch"]
    # a planned group that received nobody is a mismatch
    assert srm_test({"a": 500}, {"a": 0.5, "b": 0.5})["mismatch"]


@pytest.mark.parametrize("ratio", [1.0, 0.5])
@pytest.mark.parametrize(("effect", "n", "sd"), [(0.03, 250, 0.12), (0.5, 40, 2.0)])
def test_power_matches_statsmodels(effect, n, sd, ratio):
    d = effect / sd
    t_ref = TTestIndPower().power(effect_size=d, nobs1=n, alpha=0.05, ratio=ratio)
    z_ref = NormalIndPower().power(effect_size=d, nobs1=n, alpha=0.05, ratio=ratio)
    assert power_two_sample(effect, n, sd, 0.05, ratio, "t") == pytest.approx(t_ref, rel=1e-9)
    assert power_two_sample(effect, n, sd, 0.05, ratio, "normal") == pytest.approx(z_ref, rel=1e-9)

    for method, ref in (("t", TTestIndPower()), ("normal", NormalIndPower())):
        d_ref = ref.solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=ratio)
        assert mde(n, sd, 0.05, 0.8, ratio, method) == pytest.approx(d_ref * sd, rel=1e-6)
        n_ref = ref.solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=ratio)
        n_ours = sample_size(effect, sd, 0.05, 0.8, ratio, method, exact=True)
        assert n_ours == pytest.approx(n_ref, rel=1e-6)
        assert sample_size(effect, sd, 0.05, 0.8, ratio, method) == int(np.ceil(n_ours - 1e-9))


def test_power_bad_arguments():
    with pytest.raises(ValueError):
        mde(100, 0.0)
    with pytest.raises(ValueError):
        sample_size(0.1, 1.0, alpha=1.5)


def test_cuped_theta_is_the_ols_slope_and_reduces_variance():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 5000)
    y = 2.0 + 0.8 * x + rng.normal(0, 0.6, 5000)
    theta = cuped_theta(y, x)
    assert theta == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    y_adj, _ = cuped_adjust(y, x)
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert y_adj.mean() == pytest.approx(y.mean(), rel=1e-12)
    assert y_adj.var() / y.var() == pytest.approx(1 - rho2, rel=1e-9)
    # missing covariates: mean-imputed, those units are left unadjusted
    xn = x.copy()
    xn[:100] = np.nan
    y_nan, _ = cuped_adjust(y, xn)
    assert np.all(np.isfinite(y_nan))
    assert np.allclose(y_nan[:100] - y[:100], y_nan[0] - y[0])
    assert cuped_adjust(y, np.full_like(x, np.nan))[1] == 0.0


def test_cuped_unbiased_and_tighter_over_many_experiments():
    rng = np.random.default_rng(6)
    runs, n, effect = 1000, 200, 0.05
    raw, adj = np.empty(runs), np.empty(runs)
    for r in range(runs):
        x = rng.normal(0.5, 0.15, 2 * n)  # pre-period engagement
        treat = np.arange(2 * n) < n
        y = 0.1 + 0.8 * x + effect * treat + rng.normal(0, 0.08, 2 * n)
        y_adj, _ = cuped_adjust(y, x)
        raw[r] = y[treat].mean() - y[~treat].mean()
        adj[r] = y_adj[treat].mean() - y_adj[~treat].mean()
    # unbiased: mean estimate within 3 standard errors of the truth
    assert abs(adj.mean() - effect) < 3 * adj.std() / np.sqrt(runs)
    # theory: var ratio = 1 - rho^2 = 0.08^2 / (0.12^2 + 0.08^2) ~ 0.31
    assert adj.var() / raw.var() == pytest.approx(0.31, abs=0.07)


def test_analyze_cuped_narrows_the_ci():
    rng = np.random.default_rng(7)
    n = 400
    pre = rng.normal(0.5, 0.15, 2 * n)
    group = np.where(np.arange(2 * n) < n, "ml", "gpt4")
    y = 0.1 + 0.8 * pre + 0.02 * (group == "ml") + rng.normal(0, 0.08, 2 * n)
    pre_nan = pre.copy()
    pre_nan[::10] = np.nan
    ev = pd.DataFrame(
        {
            "learner_id": np.arange(2 * n).astype(str),
            "group": group,
            "engagement": y,
            "pre_engagement": pre_nan,
        }
    )
    plain = analyze(ev, metrics=["engagement"], min_sample_size=10)["comparisons"][0]
    cup = analyze(
        ev,
        metrics=["engagement"],
        min_sample_size=10,
        covariates={"engagement": "pre_engagement"},
    )["comparisons"][0]
    assert cup["cuped"] and not plain["cuped"]
    assert cup["ci_high"] - cup["ci_low"] < 0.75 * (plain["ci_high"] - plain["ci_low"])
    assert cup["variance_reduction"] > 0.4
    assert abs(cup["diff"] - 0.02) < 3 * cup["se"]
    assert cup["raw_diff"] == pytest.approx(plain["diff"], **TOL)
