"""The ab_analysis stage: decisions → learner events → analysis with and without CUPED, the files
it writes and every table and figure input its notebook shows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_ab_analysis import EFFECT, WEIGHTS, make_decisions

from learnops.ab import analyze, cumulative_effects, events_from_decisions, flat_metrics, mde
from learnops.config import load_params
from learnops.stages import ab_analysis

PARAMS = """
seed: 1
simulate:
  ab_test: decision_policy_v1
  ab_groups: {ml: 0.4, gpt4: 0.4, hybrid: 0.2}
  ab_effect: {ml: 0.03, gpt4: 0.0, hybrid: 0.015}
ab: {control: gpt4, alpha: 0.05, min_sample_size: 100, practical_threshold: 0.01, power: 0.8}
"""
METRICS = ["accuracy", "engagement", "success"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("ab_stage")
    (root / "params.yaml").write_text(PARAMS)
    params = load_params(root / "params.yaml")
    processed = params.path(params.paths.processed_dir)
    processed.mkdir(parents=True)
    decisions = make_decisions(900, seed=4)
    decisions.to_parquet(processed / "decisions.parquet")
    return params, decisions


@pytest.fixture(scope="module")
def res(project):
    return ab_analysis.run(project[0])


@pytest.fixture(scope="module")
def plain(project):
    return ab_analysis.run(project[0], use_cuped=False)


def _reference(decisions, covariates, looks=None):
    """The stage's analysis by hand: the ab defaults (sequential, Holm, primary engagement) and
    the simulator's plan for the simulator's experiment."""
    events = events_from_decisions(decisions, "decision_policy_v1")
    return analyze(
        events,
        control="gpt4",
        metrics=METRICS,
        planned_split=WEIGHTS,
        covariates=covariates,
        method="sequential",
        tuning_n=1000,
        looks=looks,
        plan_source="params simulate.ab_groups",
    )


def test_results_match_a_direct_analysis_and_are_written(project, res):
    params, decisions = project
    cov = {m: f"pre_{m}" for m in METRICS}
    assert res.experiment == "decision_policy_v1"
    assert res.covariates == cov
    assert res.results == _reference(decisions, cov, looks=20)
    assert res.unadjusted == _reference(decisions, {})
    assert res.results["method"] == "sequential" and len(res.results["looks"]) == 20
    reports = params.path(params.paths.reports_dir)
    assert json.loads((reports / "ab" / "results.json").read_text()) == json.loads(
        json.dumps(res.results)
    )
    written = json.loads((reports / "metrics" / "ab.json").read_text())
    # metrics are written rounded to 10 significant digits (learnops.io.METRIC_DIGITS)
    assert written == pytest.approx(flat_metrics(res.results), rel=1e-9)
    assert written == pytest.approx(res.flat_metrics, rel=1e-9)


def test_comparison_table_pairs_cuped_with_unadjusted(res):
    t = res.table
    assert len(t) == len(METRICS) * 2
    assert {"n_t", "n_c", "p_adj", "signif", "var_red", "diff_no_cuped"} <= set(t.columns)
    for row, c in zip(t.to_dict("records"), res.results["comparisons"], strict=True):
        plain = next(
            u
            for u in res.unadjusted["comparisons"]
            if (u["metric"], u["treatment"]) == (c["metric"], c["treatment"])
        )
        assert row["diff"] == c["diff"] and row["p_adj"] == c["p_adjusted"]
        assert row["diff_no_cuped"] == plain["diff"]
        assert row["p_adj_no_cuped"] == plain["p_adjusted"]
        # CUPED moves the estimate, not the raw difference it starts from
        assert c["raw_diff"] == pytest.approx(plain["diff"], rel=1e-9)
    w = res.ci_widths
    np.testing.assert_allclose(w["ci_width"], t["ci_high"] - t["ci_low"], rtol=1e-12)
    # the pre-period covers about half of the learners here: CUPED narrows every engagement CI
    eng = w[w.metric == "engagement"]
    assert (eng["width_ratio"] < 1).all(), eng


def test_without_cuped_the_analysis_is_the_unadjusted_one(project, plain):
    assert plain.covariates == {}
    assert plain.unadjusted == _reference(project[1], {})
    assert {k: v for k, v in plain.results.items() if k != "looks"} == plain.unadjusted
    np.testing.assert_array_equal(plain.table["diff"], plain.table["diff_no_cuped"])
    assert "CUPED covariates: none." in plain.decision_markdown


def test_power_inputs_reproduce_the_reported_mde(res, plain):
    p = res.power
    assert p["metric"] == res.primary == "engagement"
    c = next(
        c
        for c in res.results["comparisons"]
        if c["metric"] == "engagement" and c["treatment"] == p["treatment"]
    )
    assert p["treatment"] == "ml"  # the largest treatment arm (40 % vs 20 %)
    assert mde(p["n_current"], p["sd"], alpha=0.05, power=0.8, ratio=p["ratio"]) == pytest.approx(
        c["mde"], rel=1e-9
    )
    # without CUPED the pooled SD is that of the raw learner means (numpy reference)
    lt = plain.learners
    yt = lt.loc[lt.group == "ml", "engagement"].dropna().to_numpy()
    yc = lt.loc[lt.group == "gpt4", "engagement"].dropna().to_numpy()
    ss = ((yt - yt.mean()) ** 2).sum() + ((yc - yc.mean()) ** 2).sum()
    assert plain.power["sd"] == pytest.approx(math.sqrt(ss / (yt.size + yc.size - 2)), rel=1e-9)
    assert plain.power["ratio"] == pytest.approx(yt.size / yc.size)


def test_tables_for_the_figures(project, res):
    _, decisions = project
    events = events_from_decisions(decisions, "decision_policy_v1")
    pd.testing.assert_frame_equal(res.events, events)
    assert res.learners["learner_id"].nunique() == events["learner_id"].nunique()
    ref = cumulative_effects(events, "engagement", control="gpt4", alpha=0.05)
    pd.testing.assert_frame_equal(res.cumulative, ref)
    assert res.truth_known  # data.source: simulate (the default), the simulator's experiment
    effects = res.effects.set_index("treatment")
    truth = effects["true_lift"]
    assert truth.to_dict() == pytest.approx({t: EFFECT[t] - EFFECT["gpt4"] for t in truth.index})
    covered = (effects["ci_low"] <= truth) & (truth <= effects["ci_high"])
    assert effects["ci_covers_truth"].tolist() == covered.tolist()
    g = res.groups
    assert g["n_learners"].sum() == events["learner_id"].nunique()
    assert g["share"].sum() == pytest.approx(1.0)
    assert g.loc["ml", "expected_learners"] == pytest.approx(0.4 * g["n_learners"].sum())
    assert res.summary.loc["experiment", "value"] == "decision_policy_v1"
    assert res.summary.loc["learners", "value"] == f"{events['learner_id'].nunique():,}"


def test_real_data_have_no_truth_column(tmp_path, project, res):
    """data.source: store (the user's rows): the same estimates, and no planted lifts beside
    them, although params.yaml still holds simulate.ab_effect."""
    _, decisions = project
    (tmp_path / "params.yaml").write_text(PARAMS + "data: {source: store}\n")
    p = load_params(tmp_path / "params.yaml")
    assert p.data.source == "store" and p.simulate.ab_effect
    processed = p.path(p.paths.processed_dir)
    processed.mkdir(parents=True)
    decisions.to_parquet(processed / "decisions.parquet")
    out = ab_analysis.run(p)
    assert out.truth_known is False
    assert list(out.effects.columns) == ["treatment", "diff", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(out.effects, res.effects[list(out.effects.columns)])
    assert not any("truth" in c or "true" in c for c in out.effects.columns)


def test_decision_lines_name_the_decision_and_every_significant_effect(res):
    text = res.decision_markdown
    assert res.decision_lines[0] == f"**{res.results['decision']}**"
    significant = [c for c in res.results["comparisons"] if c["significant"]]
    assert significant, "the simulated ml lift should be detected"
    for c in significant:
        assert f"- {c['metric']}: {c['treatment']} − {c['control']} = {c['diff']:+.4f}" in text
    assert f"{res.power['mde']:.4f}" in text


def test_falls_back_to_the_only_experiment_present(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS.replace("decision_policy_v1", "absent_test"))
    params = load_params(tmp_path / "params.yaml")
    processed = params.path(params.paths.processed_dir)
    processed.mkdir(parents=True)
    make_decisions(300, seed=2, experiment="other_exp").to_parquet(processed / "decisions.parquet")
    out = ab_analysis.run(params)
    assert out.experiment == "other_exp"
    # not the simulator's experiment: simulate.ab_effect says nothing about it
    assert out.truth_known is False and "true_lift" not in out.effects


def test_confidence_sequence_inputs_and_crossings(project, res):
    from learnops.ab.sequential import confidence_sequence

    seq = res.sequence
    assert set(seq["treatment"]) == {"ml", "hybrid"} and seq["look"].max() == 20
    assert (seq["cs_low"] <= seq["fixed_low"] + 1e-12).all()
    assert (seq["cs_high"] >= seq["fixed_high"] - 1e-12).all()
    last = seq[seq.look == 20].set_index("treatment")
    for c in res.results["comparisons"]:
        if c["metric"] == "engagement":
            assert last.loc[c["treatment"], "cs_low"] == pytest.approx(c["ci_low"])
            n = c["n_treatment"] + c["n_control"]
            ref = confidence_sequence(c["diff"], c["se"], n, 0.05, 1000)
            assert c["ci_low"] == pytest.approx(float(ref["ci_low"]))
    cross = res.crossings.set_index("treatment")
    thr = res.results["practical_threshold"]
    for t, d in seq.groupby("treatment"):
        above = d[d.cs_low > thr]
        expected = int(above.look.iloc[0]) if len(above) else None
        got = cross.loc[t, "first_look_cs_above_threshold"]
        assert (got is None or got != got) if expected is None else got == expected
    assert "Method: anytime-valid confidence sequences" in res.decision_markdown


def test_fixed_method_still_draws_the_sequence(tmp_path, project):
    params, decisions = project
    (tmp_path / "params.yaml").write_text(
        PARAMS.replace("power: 0.8}", "power: 0.8, method: fixed}")
    )
    p = load_params(tmp_path / "params.yaml")
    processed = p.path(p.paths.processed_dir)
    processed.mkdir(parents=True)
    decisions.to_parquet(processed / "decisions.parquet")
    out = ab_analysis.run(p)
    assert out.results["method"] == "fixed"
    assert len(out.sequence) == 2 * 20 and (out.sequence.cs_low <= out.sequence.fixed_low).all()


def test_srm_not_checked_for_an_experiment_without_a_known_plan(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS.replace("decision_policy_v1", "absent_test"))
    params = load_params(tmp_path / "params.yaml")
    processed = params.path(params.paths.processed_dir)
    processed.mkdir(parents=True)
    make_decisions(300, seed=2, experiment="other_exp").to_parquet(processed / "decisions.parquet")
    out = ab_analysis.run(params)
    assert out.results["srm"]["checked"] is False
    assert "SRM not checked" in out.decision_markdown
