"""analyze(): decision rule, input errors, and decisions → events."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from learnops.ab import (
    analyze,
    assign_group,
    cumulative_effects,
    events_from_decisions,
    flat_metrics,
    learner_table,
)
from learnops.ab.analysis import RESULT_KEYS
from learnops.errors import LearnopsError

WEIGHTS = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
EFFECT = {"ml": 0.03, "gpt4": 0.0, "hybrid": 0.015}


def make_decisions(n_learners=600, seed=0, experiment="decision_policy_v1", per_learner=8):
    """Decisions like the simulator's: first half of the window outside any test, second half
    in ``experiment`` with hash-assigned groups and a true engagement lift per group."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-07-01", tz="UTC")
    rows = []
    for i in range(n_learners):
        h = f"{i:08x}"
        group = assign_group(experiment, h, WEIGHTS)
        u = rng.normal(0.6, 0.1)
        for k in range(rng.integers(2, per_learner + 1)):
            day = rng.uniform(0, 120)
            in_test = day >= 60
            eng = u + (EFFECT[group] if in_test else 0.0) + rng.normal(0, 0.08)
            rows.append(
                {
                    "decision_id": f"{h}-{k}",
                    "learner_hash": h,
                    "timestamp": start + pd.Timedelta(days=day),
                    "action": "continue",
                    "ab_test": experiment if in_test else None,
                    "ab_group": group if in_test else None,
                    "next_accuracy": float(np.clip(rng.normal(0.7, 0.1), 0, 1)),
                    "next_engagement": float(np.clip(eng, 0, 1)),
                    "session_completed": bool(rng.uniform() < 0.7),
                    "total_session_time_ms": 1000,
                }
            )
    return pd.DataFrame(rows)


def _learner_events(groups_n, effect=0.0, seed=0, rows=2):
    rng = np.random.default_rng(seed)
    recs = []
    for g, n in groups_n.items():
        for i in range(n):
            u = rng.normal(0.5, 0.1) + (effect if g == "ml" else 0.0)
            for _ in range(rows):
                recs.append(
                    {"learner_id": f"{g}{i}", "group": g, "engagement": u + rng.normal(0, 0.05)}
                )
    return pd.DataFrame(recs)


# ---------------------------------------------------------------------------------------------
# decision rule


def test_contract_keys_and_strict_json():
    res = analyze(_learner_events({"ml": 150, "gpt4": 150}, 0.05), metrics=["engagement"])
    assert set(res) >= {"srm", "comparisons", "winner", "decision", "reason"}
    assert set(res["srm"]) >= {"chi2", "p_value", "observed", "expected", "mismatch"}
    for c in res["comparisons"]:
        assert set(c) >= set(RESULT_KEYS)
    json.dumps(res, allow_nan=False)


def test_winner_when_significant_and_practical():
    res = analyze(_learner_events({"ml": 150, "gpt4": 150}, 0.05), metrics=["engagement"])
    assert res["winner"] == "ml" and res["reason"] == "winner"
    assert res["decision"].startswith("winner: ml")


def test_no_winner_below_min_sample_size():
    ev = _learner_events({"ml": 60, "gpt4": 60}, 0.1)
    res = analyze(ev, metrics=["engagement"], min_sample_size=100)
    assert res["comparisons"][0]["significant"]
    assert res["winner"] is None and res["reason"] == "min_sample_size"
    assert res["decision"].startswith("no winner yet: min sample size not reached")


def test_no_winner_on_srm():
    ev = _learner_events({"ml": 300, "gpt4": 200}, 0.1)
    res = analyze(ev, metrics=["engagement"], planned_split={"ml": 0.5, "gpt4": 0.5})
    assert res["srm"]["mismatch"] and res["srm"]["checked"]
    assert res["winner"] is None and res["reason"] == "srm"
    ok = analyze(ev, metrics=["engagement"], planned_split={"ml": 0.6, "gpt4": 0.4})
    assert not ok["srm"]["mismatch"] and ok["winner"] == "ml"


def test_no_winner_below_practical_threshold():
    ev = _learner_events({"ml": 2000, "gpt4": 2000}, 0.02, rows=1)
    res = analyze(ev, metrics=["engagement"], practical_threshold=0.05)
    assert res["comparisons"][0]["significant"]
    assert res["winner"] is None and res["reason"] == "below_practical_threshold"


def test_no_winner_when_not_significant_and_control_when_all_worse():
    res = analyze(_learner_events({"ml": 150, "gpt4": 150}, 0.0, seed=2), metrics=["engagement"])
    assert res["winner"] is None and res["reason"] == "not_significant"
    worse = analyze(_learner_events({"ml": 150, "gpt4": 150}, -0.05), metrics=["engagement"])
    assert worse["winner"] == "gpt4" and worse["reason"] == "control_better"


def test_guardrail_significantly_worse_metric_blocks_winner():
    ev = _learner_events({"ml": 200, "gpt4": 200}, 0.05)
    ev["accuracy"] = (
        0.7 - 0.05 * (ev["group"] == "ml") + np.random.default_rng(1).normal(0, 0.02, len(ev))
    )
    res = analyze(ev, metrics=["engagement", "accuracy"])
    assert res["winner"] is None and res["reason"] == "guardrail"
    assert "accuracy" in res["decision"]


def test_aggregates_to_learners_and_counts_rows():
    ev = _learner_events({"ml": 120, "gpt4": 110}, rows=3)
    res = analyze(ev, metrics=["engagement"])
    c = res["comparisons"][0]
    assert (c["n_treatment"], c["n_control"]) == (120, 110)
    assert (c["rows_treatment"], c["rows_control"]) == (360, 330)
    assert res["groups"]["ml"] == {"n_learners": 120, "n_rows": 360}


# ---------------------------------------------------------------------------------------------
# bad input


def test_learner_in_two_groups_is_an_error():
    ev = _learner_events({"ml": 10, "gpt4": 10})
    ev.loc[0, "group"] = "gpt4"
    with pytest.raises(LearnopsError, match="more than one group"):
        analyze(ev, metrics=["engagement"])


@pytest.mark.parametrize(
    ("mutate", "kwargs", "match"),
    [
        (lambda e: e.drop(columns="group"), {}, "missing column"),
        (lambda e: e.drop(columns="learner_id"), {}, "learner_id"),
        (lambda e: e, {"metrics": ["clicks"]}, "missing column.*clicks"),
        (lambda e: e, {"control": "llm"}, "control group 'llm' not found"),
        (lambda e: e[e.group == "gpt4"], {}, "only the control"),
        (lambda e: e.assign(engagement="high"), {}, "must be numeric"),
        (lambda e: e.iloc[:0], {}, "no rows"),
        (lambda e: e, {"planned_split": {"ml": 1.0}}, "not in the planned split"),
        (lambda e: e, {"covariates": {"engagement": "pre"}}, "missing column.*pre"),
        (lambda e: e, {"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_input_raises_one_clear_error(mutate, kwargs, match):
    ev = _learner_events({"ml": 10, "gpt4": 10})
    with pytest.raises(LearnopsError, match=match):
        analyze(mutate(ev), **{"metrics": ["engagement"], **kwargs})


def test_learner_hash_column_and_extra_columns_accepted():
    ev = _learner_events({"ml": 20, "gpt4": 20}).rename(columns={"learner_id": "learner_hash"})
    ev["whatever"] = "x"
    res = analyze(ev, metrics=["engagement"], min_sample_size=5)
    assert res["comparisons"][0]["n_treatment"] == 20


def test_missing_metric_values_drop_learners_for_that_metric_only():
    ev = _learner_events({"ml": 30, "gpt4": 30}, rows=1)
    ev["accuracy"] = 0.5
    ev.loc[ev.learner_id == "ml0", "engagement"] = np.nan
    lt = learner_table(ev, ["engagement", "accuracy"])
    assert math.isnan(lt.loc[lt.learner_id == "ml0", "engagement"].item())
    res = analyze(ev, metrics=["engagement", "accuracy"], min_sample_size=5)
    by = {c["metric"]: c for c in res["comparisons"]}
    assert by["engagement"]["n_treatment"] == 29 and by["accuracy"]["n_treatment"] == 30
    assert by["accuracy"]["p_value"] is None  # zero variance: undefined, kept out of Holm


# ---------------------------------------------------------------------------------------------
# decisions → events


def test_events_from_decisions_maps_columns_and_pre_period():
    dec = make_decisions(200)
    ev = events_from_decisions(dec)
    in_test = dec[dec.ab_test.notna()]
    assert len(ev) == len(in_test)
    assert list(ev.columns[:4]) == ["decision_id", "learner_id", "group", "timestamp"]
    assert set(ev["success"].unique()) <= {0.0, 1.0}
    assert ev.attrs["experiment"] == "decision_policy_v1"
    merged = ev.merge(dec, on="decision_id")
    assert (merged.learner_id == merged.learner_hash).all()
    assert (merged.group == merged.ab_group).all()
    np.testing.assert_array_equal(merged.engagement, merged.next_engagement)
    np.testing.assert_array_equal(merged.success, merged.session_completed.astype(float))
    # pre-period covariate = learner mean over non-test decisions before the test began
    start = in_test.timestamp.min()
    pre = dec[dec.ab_test.isna() & (dec.timestamp < start)]
    ref = pre.groupby("learner_hash")["next_engagement"].mean()
    got = ev.groupby("learner_id")["pre_engagement"].first()
    both = got.dropna()
    np.testing.assert_allclose(both, ref.loc[both.index], rtol=1e-12)
    no_pre = sorted(set(ev.learner_id) - set(pre.learner_hash))
    assert got.loc[no_pre].isna().all()


def test_events_from_decisions_experiment_selection():
    a = make_decisions(30, experiment="exp_a")
    b = make_decisions(30, seed=1, experiment="exp_b")
    both = pd.concat([a, b], ignore_index=True)
    with pytest.raises(LearnopsError, match="several A/B tests"):
        events_from_decisions(both)
    ev = events_from_decisions(both, "exp_b")
    assert len(ev) == b.ab_test.notna().sum()
    with pytest.raises(LearnopsError, match="not in decisions"):
        events_from_decisions(both, "exp_c")
    with pytest.raises(LearnopsError, match="no rows belong"):
        events_from_decisions(a.assign(ab_test=None, ab_group=None))
    with pytest.raises(LearnopsError, match="missing column"):
        events_from_decisions(a.drop(columns="next_accuracy"))


def test_end_to_end_on_simulated_decisions_finds_the_ml_effect():
    dec = make_decisions(3000, seed=3)
    ev = events_from_decisions(dec)
    cov = {m: f"pre_{m}" for m in ("accuracy", "engagement", "success")}
    res = analyze(ev, planned_split=WEIGHTS, covariates=cov)
    by = {(c["metric"], c["treatment"]): c for c in res["comparisons"]}
    eng = by[("engagement", "ml")]
    assert eng["ci_low"] < 0.03 < eng["ci_high"]
    assert eng["variance_reduction"] > 0.3
    assert res["winner"] == "ml", res["decision"]
    assert not res["srm"]["mismatch"]
    flat = flat_metrics(res)
    assert flat["has_winner"] == 1 and flat["engagement_ml_significant"] == 1
    json.dumps(flat, allow_nan=False)
    cum = cumulative_effects(ev, "engagement", "gpt4")
    assert set(cum.treatment) == {"ml", "hybrid"}
    last = cum[cum.treatment == "ml"].iloc[-1]
    assert last["diff"] == pytest.approx(by[("engagement", "ml")]["raw_diff"], rel=1e-9)
