"""Sequential analysis, ratio metrics, BH and looks: against references (closed forms, a bootstrap,
statsmodels) and by simulation (CS coverage over A/A streams, delta-method coverage)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from learnops.ab import analyze
from learnops.ab.analysis import LOOK_KEYS, RESULT_KEYS, look_sizes
from learnops.ab.ratio import delta_var_formula, ratio_compare, ratio_estimate, relative_lift
from learnops.ab.sequential import (
    anytime_p_value,
    confidence_sequence,
    cs_multiplier,
    rho_squared,
    running_min,
)
from learnops.ab.stats import adjust_p, bh
from learnops.errors import LearnopsError

SPLIT = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}


def clustered(rng, n=600, effect=None, split=SPLIT):
    """Learner-clustered events (1–6 rows per learner) with a ratio metric correct/attempted."""
    effect = effect or {}
    arms = np.array(list(split))
    g = arms[rng.choice(len(arms), n, p=list(split.values()))]
    k = rng.integers(1, 7, n)
    lid = np.repeat(np.arange(n), k)
    u = rng.normal(0.6, 0.1, n) + np.array([effect.get(a, 0.0) for a in g])
    p_acc = np.clip(rng.normal(0.7, 0.12, n), 0.05, 0.98)
    att = rng.integers(1, 8, lid.size)
    return pd.DataFrame(
        {
            "learner_id": lid.astype(str),
            "group": g[lid],
            "timestamp": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(lid * 60 + rng.uniform(0, 30, lid.size), unit="s"),
            "engagement": np.clip(u[lid] + rng.normal(0, 0.08, lid.size), 0, 1),
            "attempted": att.astype(float),
            "correct": rng.binomial(att, p_acc[lid]).astype(float),
        }
    )


# ---------------------------------------------------------------------------------------------
# confidence sequence: closed form, p-value duality, coverage


def test_cs_closed_form_and_tightest_at_tuning_n():
    alpha, n_star = 0.05, 1000
    r2 = rho_squared(n_star, alpha)
    a = -2 * math.log(alpha)
    assert r2 == pytest.approx((a + math.log(a + 1)) / n_star)
    n = 800.0
    ref = math.sqrt(n) * math.sqrt(
        2 * (n * r2 + 1) / (n * n * r2) * math.log(math.sqrt(n * r2 + 1) / alpha)
    )
    assert float(cs_multiplier(n, alpha, n_star)) == pytest.approx(ref, rel=1e-12)
    # in standard errors the CS is narrowest around n* (and wider than the fixed 1.96)
    ns = np.geomspace(50, 50_000, 400)
    m = cs_multiplier(ns, alpha, n_star)
    assert 0.5 * n_star < ns[np.argmin(m)] < 2 * n_star
    assert m.min() > 1.96 and 2.9 < m.min() < 3.2


def test_anytime_p_value_is_the_cs_dual():
    rng = np.random.default_rng(0)
    for _ in range(20):
        diff, se, n = rng.normal(0, 0.05), rng.uniform(0.005, 0.03), rng.integers(50, 5000)
        p = float(anytime_p_value(diff, se, n))
        if p >= 1:
            continue
        at_p = confidence_sequence(diff, se, n, alpha=0.05)
        # at level p (same rho) the CS boundary touches 0
        r2 = rho_squared(1000, 0.05)
        half = (
            se
            * math.sqrt(n)
            * math.sqrt(2 * (n * r2 + 1) / (n * n * r2) * math.log(math.sqrt(n * r2 + 1) / p))
        )
        assert half == pytest.approx(abs(diff), rel=1e-9)
        assert (p < 0.05) == (at_p["ci_low"] > 0 or at_p["ci_high"] < 0)


def test_running_min():
    np.testing.assert_array_equal(running_min([0.5, np.nan, 0.2, 0.4]), [0.5, 0.5, 0.2, 0.2])


def test_cs_time_uniform_coverage_over_simulated_aa_streams():
    """Gaussian A/A streams watched at 100 looks: the CS misses 0 at some look in ≤ alpha of
    streams, the fixed-horizon CI in far more."""
    rng = np.random.default_rng(7)
    streams, n_max = 2000, 2000
    looks = np.linspace(20, n_max, 100).astype(int)
    y = rng.normal(0, 1, (streams, n_max))
    treat = rng.uniform(size=(streams, n_max)) < 0.5
    ever_cs = np.zeros(streams, bool)
    ever_fixed = np.zeros(streams, bool)
    for n in looks:
        yt, tt = y[:, :n], treat[:, :n]
        nt, nc = tt.sum(1), (~tt).sum(1)
        mt = (yt * tt).sum(1) / nt
        mc = (yt * ~tt).sum(1) / nc
        vt = ((yt - mt[:, None]) ** 2 * tt).sum(1) / (nt - 1)
        vc = ((yt - mc[:, None]) ** 2 * ~tt).sum(1) / (nc - 1)
        se = np.sqrt(vt / nt + vc / nc)
        cs = confidence_sequence(mt - mc, se, n, 0.05, tuning_n=1000)
        ever_cs |= (cs["ci_low"] > 0) | (cs["ci_high"] < 0)
        ever_fixed |= np.abs(mt - mc) / se > 1.96
    print(f"ever outside: CS {ever_cs.mean():.4f}, fixed {ever_fixed.mean():.4f}")
    assert ever_cs.mean() <= 0.05
    assert ever_fixed.mean() > 0.2


# ---------------------------------------------------------------------------------------------
# ratio metrics: delta method vs bootstrap and the textbook formula


def test_delta_variance_matches_formula_and_bootstrap():
    rng = np.random.default_rng(3)
    n = 400
    b = rng.integers(1, 30, n).astype(float)
    a = rng.binomial(b.astype(int), np.clip(rng.normal(0.6, 0.15, n), 0, 1)).astype(float)
    est = ratio_estimate(a, b)
    assert est["ratio"] == pytest.approx(a.sum() / b.sum())
    assert est["var"] == pytest.approx(delta_var_formula(a, b), rel=1e-10)
    # learner-level (cluster) bootstrap of the ratio of sums
    idx = rng.integers(0, n, (4000, n))
    boot = a[idx].sum(1) / b[idx].sum(1)
    assert est["var"] == pytest.approx(boot.var(ddof=1), rel=0.08)


def test_relative_lift_delta_method_vs_bootstrap():
    rng = np.random.default_rng(4)
    at, ac = rng.normal(1.1, 0.3, 500), rng.normal(1.0, 0.3, 500)
    lift, se = relative_lift(at.mean(), at.var(ddof=1) / 500, ac.mean(), ac.var(ddof=1) / 500)
    assert lift == pytest.approx(at.mean() / ac.mean() - 1)
    i, j = rng.integers(0, 500, (4000, 500)), rng.integers(0, 500, (4000, 500))
    boot = at[i].mean(1) / ac[j].mean(1) - 1
    assert se == pytest.approx(boot.std(ddof=1), rel=0.08)


def test_ratio_cuped_reduces_variance_and_is_unbiased():
    rng = np.random.default_rng(5)
    diffs, diffs_c, v, vc = [], [], [], []
    for _ in range(300):
        n = 400
        p = np.clip(rng.normal(0.6, 0.15, n), 0.02, 0.98)
        b = rng.integers(1, 20, n).astype(float)
        a = rng.binomial(b.astype(int), p).astype(float)
        x = p + rng.normal(0, 0.05, n)  # pre-period accuracy
        t = rng.uniform(size=n) < 0.5
        r = ratio_compare(a[t], b[t], a[~t], b[~t])
        rc = ratio_compare(a[t], b[t], a[~t], b[~t], x[t], x[~t])
        diffs.append(r["diff"])
        diffs_c.append(rc["diff"])
        v.append(r["se"] ** 2)
        vc.append(rc["se"] ** 2)
    assert abs(np.mean(diffs_c)) < 3 * np.std(diffs_c) / math.sqrt(300)
    assert np.mean(vc) < 0.7 * np.mean(v)
    assert np.var(diffs_c) == pytest.approx(np.mean(vc), rel=0.25)


def test_delta_method_ci_coverage_over_simulated_aa_experiments():
    rng = np.random.default_rng(11)
    covered = total = 0
    for _ in range(300):
        ev = clustered(rng, n=300, split={"ml": 0.5, "gpt4": 0.5})
        res = analyze(
            ev,
            metrics=[],
            ratio_metrics={"acc": ["correct", "attempted"]},
            primary_metric="acc",
            min_sample_size=1,
        )
        c = res["comparisons"][0]
        covered += c["ci_low"] <= 0 <= c["ci_high"]
        total += 1
    print(f"delta-method CI coverage: {covered / total:.3f}")
    assert 0.92 <= covered / total <= 0.98


def test_ratio_metric_in_analyze():
    rng = np.random.default_rng(1)
    ev = clustered(rng)
    res = analyze(ev, metrics=["engagement"], ratio_metrics={"acc": ["correct", "attempted"]},
                  planned_split=SPLIT)  # fmt: skip
    c = next(c for c in res["comparisons"] if c["metric"] == "acc" and c["treatment"] == "ml")
    assert set(c) >= set(RESULT_KEYS) and c["kind"] == "ratio"
    per = ev.groupby("learner_id").agg(
        g=("group", "first"), a=("correct", "sum"), b=("attempted", "sum")
    )
    t, k = per[per.g == "ml"], per[per.g == "gpt4"]
    r = ratio_compare(t.a, t.b, k.a, k.b)
    assert c["mean_treatment"] == pytest.approx(t.a.sum() / t.b.sum())
    assert c["diff"] == pytest.approx(r["diff"]) and c["se"] == pytest.approx(r["se"])
    assert c["ci_high"] - c["diff"] == pytest.approx(1.959964 * r["se"], rel=1e-5)
    assert c["rel_ci_low"] < c["relative_lift"] < c["rel_ci_high"]
    assert res["ratio_metrics"] == {"acc": ["correct", "attempted"]}
    with pytest.raises(LearnopsError, match="both a metric and a ratio"):
        analyze(ev, metrics=["engagement"], ratio_metrics={"engagement": ["correct", "attempted"]})
    with pytest.raises(LearnopsError, match="missing column"):
        analyze(ev, metrics=["engagement"], ratio_metrics={"acc": ["correct", "nope"]})


# ---------------------------------------------------------------------------------------------
# BH, methods, looks, SRM, decisions


def test_bh_matches_statsmodels():
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=15), rng.uniform(0, 0.01, 5)]
    ref = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(bh(p), ref, rtol=1e-12)
    with_nan = np.r_[p[:5], np.nan]
    np.testing.assert_allclose(bh(with_nan)[:5], multipletests(p[:5], method="fdr_bh")[1])
    assert np.isnan(bh(with_nan)[5])
    with pytest.raises(LearnopsError, match="holm or bh"):
        adjust_p(p, "bonferroni")


def test_sequential_analysis_wraps_the_fixed_estimate():
    rng = np.random.default_rng(6)
    ev = clustered(rng, effect={"ml": 0.05})
    fixed = analyze(ev, metrics=["engagement"], planned_split=SPLIT)
    seq = analyze(ev, metrics=["engagement"], planned_split=SPLIT, method="sequential",
                  tuning_n=500, correction="bh")  # fmt: skip
    assert seq["method"] == "sequential" and seq["correction"] == "bh"
    for f, s in zip(fixed["comparisons"], seq["comparisons"], strict=True):
        assert s["diff"] == f["diff"] and s["se"] == f["se"]
        assert s["ci_low"] < f["ci_low"] and s["ci_high"] > f["ci_high"]
        assert s["fixed_ci_low"] == f["ci_low"] and s["p_value"] >= f["p_value"]
        cs = confidence_sequence(s["diff"], s["se"], s["n_treatment"] + s["n_control"], 0.05, 500)
        assert s["ci_low"] == pytest.approx(float(cs["ci_low"]))
    assert seq["winner"] == "ml"


def test_looks_follow_first_events_and_contract():
    rng = np.random.default_rng(8)
    ev = clustered(rng, n=400).sample(frac=1, random_state=1)  # rows shuffled; order by time
    res = analyze(ev, metrics=["engagement"], planned_split=SPLIT, looks=10, method="sequential")
    assert [lk["look"] for lk in res["looks"]] == list(range(1, 11))
    assert (
        [lk["n_learners"] for lk in res["looks"]] == look_sizes(400, 10) == list(range(40, 401, 40))
    )
    first = res["looks"][0]
    assert all(set(c) == set(LOOK_KEYS) for c in first["comparisons"])
    # look 1 = the 40 learners who came first (learner ids were numbered by arrival)
    early = ev[ev.learner_id.astype(int) < 40]
    ref = analyze(early, metrics=["engagement"], method="sequential", min_sample_size=1)
    by = {c["treatment"]: c for c in ref["comparisons"]}
    for c in first["comparisons"]:
        assert c["diff"] == pytest.approx(by[c["treatment"]]["diff"])
        assert c["ci_low"] == pytest.approx(by[c["treatment"]]["ci_low"])
    last = res["looks"][-1]["comparisons"]
    assert [c["diff"] for c in last] == [c["diff"] for c in res["comparisons"]]
    json.dumps(res, allow_nan=False)


def test_srm_not_checked_without_a_plan_and_caught_with_one():
    rng = np.random.default_rng(9)
    ok = clustered(rng, n=1500)
    res = analyze(ok, metrics=["engagement"])
    assert res["srm"]["checked"] is False and not res["srm"]["mismatch"]
    assert "not checked" in res["srm"]["note"]
    skew = clustered(rng, n=1500, split={"ml": 0.5, "gpt4": 0.3, "hybrid": 0.2})
    res = analyze(skew, metrics=["engagement"], planned_split=SPLIT)
    assert res["srm"]["checked"] and res["srm"]["mismatch"] and res["reason"] == "srm"


def test_winner_needs_the_ci_above_the_threshold_and_guardrail_margins():
    rng = np.random.default_rng(10)
    ev = clustered(rng, n=1200, effect={"ml": 0.05}, split={"ml": 0.5, "gpt4": 0.5})
    ev["accuracy"] = np.clip(0.7 + rng.normal(0, 0.15, len(ev)), 0, 1)
    res = analyze(ev, metrics=["engagement", "accuracy"], practical_threshold=0.01)
    assert res["winner"] == "ml" and res["primary_metric"] == "engagement"
    assert "relative lift" in res["decision"]
    # the point estimate clears 0.03 but the CI's lower bound does not
    c = next(c for c in res["comparisons"] if c["metric"] == "engagement")
    high = analyze(ev, metrics=["engagement", "accuracy"], practical_threshold=c["ci_low"] + 0.002)
    assert high["winner"] is None and high["reason"] == "below_practical_threshold"
    # a tight non-inferiority margin on accuracy blocks the winner
    tight = analyze(ev, metrics=["engagement", "accuracy"], guardrail_margins={"accuracy": 0.001})
    assert tight["winner"] is None and tight["reason"] == "guardrail"
    # winning on a non-primary metric does not make a winner
    other = analyze(ev, metrics=["engagement", "accuracy"], primary_metric="accuracy")
    assert other["winner"] is None
