"""The ``ab_analysis`` stage: the decision-policy experiment analysed at the learner level.

Reads ``data/processed/decisions.parquet``, turns the experiment's decisions into learner events,
analyses them with CUPED covariates (when asked) and without — by default with anytime-valid
confidence sequences (``ab.method: sequential``), since a running experiment is looked at
repeatedly — repeats the analysis at ``ab.looks`` cumulative learner counts, and writes
``reports/ab/results.json`` and the DVC metric ``reports/metrics/ab.json``. Returns everything
notebook 05 shows.

No data (issue 22, item 14): with no decisions in the export window the stage analyses nothing
and returns a :class:`~learnops.stages.Skipped`; ``results.json`` and ``ab.json`` are both
``{"skipped": true, "reason": …}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params
    from learnops.stages import Skipped

#: results.json comparison key → column of the comparison table, in display order (short names
#: so that the table fits a report page)
TABLE_COLUMNS: dict[str, str] = {
    "metric": "metric",
    "treatment": "treatment",
    "n_treatment": "n_t",
    "n_control": "n_c",
    "mean_treatment": "mean_t",
    "mean_control": "mean_c",
    "diff": "diff",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "p_value": "p",
    "p_adjusted": "p_adj",
    "significant": "signif",
    "relative_lift": "rel_lift",
    "rel_ci_low": "rel_lo",
    "rel_ci_high": "rel_hi",
    "test": "test",
    "mde": "mde",
    "variance_reduction": "var_red",
}


@dataclass
class AbAnalysisResult:
    """What notebook 05 shows: the analysis (``results`` is results.json), its tables and the
    inputs of its figures. ``truth_known``: the data are the simulator's, so ``effects`` has the
    planted lifts next to the estimates."""

    experiment: str
    use_cuped: bool
    metrics: list[str]
    primary: str
    covariates: dict[str, str]
    events: pd.DataFrame
    results: dict[str, Any]
    unadjusted: dict[str, Any]
    table: pd.DataFrame
    ci_widths: pd.DataFrame
    groups: pd.DataFrame
    learners: pd.DataFrame
    effects: pd.DataFrame
    truth_known: bool
    cumulative: pd.DataFrame
    sequence: pd.DataFrame
    crossings: pd.DataFrame
    power: dict[str, Any]
    decision_lines: list[str]
    summary: pd.DataFrame
    flat_metrics: dict[str, Any] = field(default_factory=dict)

    skipped: ClassVar[bool] = False

    @property
    def decision_markdown(self) -> str:
        """The decision and its grounds as Markdown."""
        return "\n".join(self.decision_lines)


def comparison_table(results: dict[str, Any], unadjusted: dict[str, Any]) -> pd.DataFrame:
    """One row per metric × treatment: the comparison as analysed (CUPED where a covariate is
    used; columns renamed by :data:`TABLE_COLUMNS`) plus ``diff_no_cuped`` and
    ``p_adj_no_cuped`` from the same analysis without covariates."""
    import pandas as pd

    table = pd.DataFrame(results["comparisons"]).reindex(columns=list(TABLE_COLUMNS))
    plain = {(c["metric"], c["treatment"]): c for c in unadjusted["comparisons"]}
    keys = list(zip(table["metric"], table["treatment"], strict=True))
    table["diff_no_cuped"] = [plain[k]["diff"] for k in keys]
    table["p_adj_no_cuped"] = [plain[k]["p_adjusted"] for k in keys]
    return table.rename(columns=TABLE_COLUMNS)


def ci_widths(results: dict[str, Any], unadjusted: dict[str, Any]) -> pd.DataFrame:
    """Confidence-interval width of every comparison as analysed and without covariates."""
    import pandas as pd

    plain = {(c["metric"], c["treatment"]): c for c in unadjusted["comparisons"]}

    def width(c: dict[str, Any]) -> float:
        lo, hi = c["ci_low"], c["ci_high"]
        return math.nan if lo is None or hi is None else hi - lo

    rows = [
        {
            "metric": c["metric"],
            "treatment": c["treatment"],
            "ci_width": width(c),
            "ci_width_no_cuped": width(plain[(c["metric"], c["treatment"])]),
        }
        for c in results["comparisons"]
    ]
    out = pd.DataFrame(rows, columns=["metric", "treatment", "ci_width", "ci_width_no_cuped"])
    out["width_ratio"] = out["ci_width"] / out["ci_width_no_cuped"]
    return out


def true_effects(params: Params, experiment: str) -> dict[str, float] | None:
    """The lifts the simulator planted per arm (``simulate.ab_effect``) when the analysed
    experiment is the simulator's (``data.source: simulate`` and ``simulate.ab_test``); None
    for real data, which have no known truth."""
    if params.data.source != "simulate" or experiment != params.simulate.ab_test:
        return None
    return dict(params.simulate.ab_effect)


def effects_table(
    table: pd.DataFrame,
    control: str,
    true_effect: dict[str, float] | None = None,
    metric: str = "engagement",
) -> pd.DataFrame:
    """Estimated effects on ``metric`` (difference and interval per treatment); with
    ``true_effect`` (simulated data: see :func:`true_effects`) also the planted lift against
    the control (``true_lift``; 0 for arms without one) and whether the interval covers it
    (``ci_covers_truth``)."""
    cols = ["treatment", "diff", "ci_low", "ci_high"]
    out = table.loc[table["metric"] == metric, cols].copy()
    if true_effect is not None:
        out["true_lift"] = [
            true_effect.get(t, 0.0) - true_effect.get(control, 0.0) for t in out["treatment"]
        ]
        out["ci_covers_truth"] = (out["ci_low"] <= out["true_lift"]) & (
            out["true_lift"] <= out["ci_high"]
        )
    return out.reset_index(drop=True)


def power_inputs(
    results: dict[str, Any], metric: str, alpha: float, power: float, threshold: float
) -> dict[str, Any]:
    """Inputs of the power curve for ``metric``: the comparison with the largest treatment arm,
    its pooled learner-level SD, its allocation ratio and its reported MDE."""
    comps = [c for c in results["comparisons"] if c["metric"] == metric]
    c = max(comps, key=lambda c: c["n_treatment"])
    n_t, n_c = c["n_treatment"], c["n_control"]
    sd_t, sd_c = c["sd_treatment"], c["sd_control"]
    dof = n_t + n_c - 2
    if sd_t is None or sd_c is None or dof <= 0:
        sd = math.nan
    else:
        sd = math.sqrt(((n_t - 1) * sd_t**2 + (n_c - 1) * sd_c**2) / dof)
    return {
        "sd": sd,
        "n_current": n_c,
        "alpha": alpha,
        "power": power,
        "ratio": n_t / n_c if n_c else 1.0,
        "threshold": threshold,
        "metric": metric,
        "treatment": c["treatment"],
        "control": c["control"],
        "n_treatment": n_t,
        "mde": c["mde"],
    }


def decision_lines(
    results: dict[str, Any], covariates: dict[str, str], power: dict[str, Any]
) -> list[str]:
    """The decision, the unit, the SRM check, the method, the correction and every significant
    effect, as Markdown lines."""
    srm = results["srm"]
    groups = results["groups"].values()
    mde = power["mde"]
    correction = {"holm": "Holm", "bh": "Benjamini–Hochberg"}.get(
        results["correction"], results["correction"]
    )
    if srm.get("checked", True):
        srm_line = (
            f"- SRM check against {srm.get('plan_source') or 'the planned split'}: chi2 = "
            f"{srm['chi2']:.2f}, p = {srm['p_value']:.3g} "
            f"({'mismatch — do not trust the effects' if srm['mismatch'] else 'no mismatch'})."
        )
    else:
        srm_line = f"- {srm['note']}."
    if results["method"] == "sequential":
        method = (
            "anytime-valid confidence sequences (asymptotic CS, tightest at "
            f"{results['sequential_tuning_n']:,} learners per comparison): valid at every look"
        )
    else:
        method = "fixed-horizon tests (valid for one look at a planned size)"
    margins = results.get("guardrail_margins") or {}
    guard = ", ".join(f"{m} ≥ −{v:g}" for m, v in margins.items()) or "none"
    level = f"{1 - results['alpha']:.0%}"
    lines = [
        f"**{results['decision']}**",
        "",
        f"- Unit of analysis: the learner ({sum(g['n_learners'] for g in groups):,} learners, "
        f"{sum(g['n_rows'] for g in groups):,} decisions).",
        srm_line,
        f"- Method: {method}.",
        f"- {len(results['comparisons'])} comparisons, {correction}-corrected at alpha = "
        f"{results['alpha']}. The winner is decided on **{results['primary_metric']}**: its "
        f"{level} interval's lower bound must exceed the practical threshold "
        f"{results['practical_threshold']}, with at least {results['min_sample_size']} learners "
        f"per group; the other metrics are guardrails (non-inferiority margins: {guard}; "
        "without a margin a guardrail must not be significantly worse).",
        "- CUPED covariates: "
        + (", ".join(f"{m} ← {c}" for m, c in covariates.items()) or "none")
        + ".",
        f"- Fixed-horizon MDE on {power['metric']} for {power['treatment']} vs "
        f"{power['control']} at the current size ({power['n_treatment']} vs "
        f"{power['n_current']} learners): "
        + (f"{mde:.4f}." if mde is not None else "not estimable."),
    ]
    for c in results["comparisons"]:
        if c["significant"]:
            rel = c.get("relative_lift")
            rel_text = (
                f"; relative {rel:+.1%} ({c['rel_ci_low']:+.1%} .. {c['rel_ci_high']:+.1%})"
                if rel is not None and c.get("rel_ci_low") is not None
                else ""
            )
            lines.append(
                f"- {c['metric']}: {c['treatment']} − {c['control']} = {c['diff']:+.4f} "
                f"({level} {'CS' if c.get('method') == 'sequential' else 'CI'} "
                f"{c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
                f"p_adj = {c['p_adjusted']:.2g}{rel_text})"
            )
    return lines


def crossings_table(sequence: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per treatment: the first look whose confidence sequence lies above the practical
    threshold (lower bound > threshold) and the first look whose fixed-horizon CI does
    (the one a daily peeker would have stopped at), with their learner counts."""
    import pandas as pd

    rows = []
    for t, d in sequence.groupby("treatment", sort=True):
        cs = d[d["cs_low"] > threshold]
        fx = d[d["fixed_low"] > threshold]
        rows.append(
            {
                "treatment": t,
                "looks": len(d),
                "first_look_cs_above_threshold": int(cs["look"].iloc[0]) if len(cs) else None,
                "n_learners_cs": int(cs["n_learners"].iloc[0]) if len(cs) else None,
                "first_look_fixed_above_threshold": int(fx["look"].iloc[0]) if len(fx) else None,
                "n_learners_fixed": int(fx["n_learners"].iloc[0]) if len(fx) else None,
            }
        )
    return pd.DataFrame(rows)


def load_events(params: Params) -> pd.DataFrame:
    """The learner events of the experiment in the processed decisions (``simulate.ab_test``
    when present, else the only A/B test there); ``attrs["experiment"]`` names it."""
    from learnops.ab.analysis import events_from_decisions
    from learnops.io import read_table

    decisions = read_table(params.path(params.paths.processed_dir) / "decisions.parquet")
    present = set(decisions["ab_test"].dropna().astype(str))
    wanted = params.simulate.ab_test if params.simulate.ab_test in present else None
    return events_from_decisions(decisions, wanted)


def analyze_both(
    params: Params, events: pd.DataFrame, covariates: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results with ``covariates`` and ``ab.looks`` looks, results without covariates), both
    with the ``ab`` params (method, correction, ratio metrics, primary metric, margins) and the
    planned split of :func:`learnops.ab.analysis.planned_split_for`."""
    from learnops.ab.analysis import analyze, params_kwargs, planned_split_for

    split, source = planned_split_for(params, events.attrs.get("experiment"))
    common = params_kwargs(params.ab, events.columns)
    common.update(planned_split=split, plan_source=source)
    return (
        analyze(events, covariates=covariates, looks=params.ab.looks, **common),
        analyze(events, **common),
    )


def groups_table(results: dict[str, Any]) -> pd.DataFrame:
    """Learners and decisions per group, with the learners the planned split expects and each
    group's share."""
    import pandas as pd

    groups = pd.DataFrame(results["groups"]).T.rename_axis("group")
    groups["expected_learners"] = pd.Series(results["srm"]["expected"] or {}, dtype=float)
    groups["share"] = groups["n_learners"] / groups["n_learners"].sum()
    return groups


def summary_table(
    experiment: str,
    events: pd.DataFrame,
    results: dict[str, Any],
    primary: str,
    covariates: dict[str, str],
) -> pd.DataFrame:
    """The experiment at a glance: its size, period, pre-period coverage, covariates and
    decision."""
    import pandas as pd

    pre_col = f"pre_{primary}"
    pre_share = (
        float(events.groupby("learner_id")[pre_col].first().notna().mean())
        if pre_col in events
        else math.nan
    )
    return pd.DataFrame(
        {
            "value": [
                experiment,
                f"{len(events):,}",
                f"{events['learner_id'].nunique():,}",
                f"{events['timestamp'].min():%Y-%m-%d} .. {events['timestamp'].max():%Y-%m-%d}",
                "none" if math.isnan(pre_share) else f"{pre_share:.0%}",
                ", ".join(covariates.values()) or "none",
                results["winner"] or "none",
                results["reason"],
            ]
        },
        index=[
            "experiment",
            "decisions",
            "learners",
            "period (UTC)",
            f"learners with a pre-period {primary}",
            "CUPED covariates",
            "winner",
            "decision (reason code)",
        ],
    )


def run(params: Params, use_cuped: bool = True) -> AbAnalysisResult | Skipped:
    """Analyse the experiment in the processed decisions (with CUPED covariates when
    ``use_cuped`` and a pre-period exists, and without), write results.json and the ``ab``
    metrics, and return the tables and figure inputs."""
    from learnops.ab.analysis import (
        LearnerData,
        Options,
        cumulative_effects,
        flat_metrics,
        learner_table,
        look_results,
        metric_specs,
    )
    from learnops.io import write_json
    from learnops.stages import Skipped, no_rows_reason, processed_table, write_metrics

    _, decisions = processed_table(params, "decisions")
    if decisions.empty:
        reason = no_rows_reason(params, "decisions")
        doc = {"skipped": True, "reason": reason}
        write_json(params.path(params.paths.reports_dir) / "ab" / "results.json", doc)
        write_metrics(params, "ab", dict(doc))
        return Skipped("ab_analysis", reason, "no experiment is analysed", metrics=doc)
    in_ab = decisions["ab_test"].notna() & decisions["ab_group"].notna()
    if not in_ab.any():  # e.g. a decision log imported from a system without experiments
        reason = (
            f"none of the {len(decisions)} exported decisions belongs to an A/B test "
            "(ab_test and ab_group are empty)"
        )
        doc = {"skipped": True, "reason": reason}
        write_json(params.path(params.paths.reports_dir) / "ab" / "results.json", doc)
        write_metrics(params, "ab", dict(doc))
        return Skipped(
            "ab_analysis",
            reason,
            "no experiment is analysed",
            metrics=doc,
            headline="No experiment",
        )
    ab = params.ab
    events = load_events(params)
    experiment = events.attrs["experiment"]
    names = [m for m in ab.metrics if m in events] + [
        r for r, (n, d) in ab.ratio_metrics.items() if n in events and d in events
    ]
    covariates = {m: f"pre_{m}" for m in names if use_cuped and f"pre_{m}" in events}
    for r, (num, _) in ab.ratio_metrics.items():  # a ratio metric: its numerator's pre-period
        if use_cuped and r in names and r not in covariates and f"pre_{num}" in events:
            covariates[r] = f"pre_{num}"
    results, unadjusted = analyze_both(params, events, covariates)
    flat = flat_metrics(results)
    write_json(params.path(params.paths.reports_dir) / "ab" / "results.json", results)
    write_metrics(params, "ab", flat)

    metrics = [m for m in results["metrics"] if m in ab.metrics]
    table = comparison_table(results, unadjusted)
    primary = results["primary_metric"]
    power_metric = primary if primary in metrics else metrics[0]
    power = power_inputs(results, power_metric, ab.alpha, ab.power, ab.practical_threshold)
    looks = results["looks"]
    if results["method"] != "sequential":  # the figure shows the CS next to the fixed CI
        ratios = results["ratio_metrics"]
        lt = learner_table(events, metrics, covariates, ratios)
        opts = Options(ab.control, ab.alpha, "sequential", ab.correction, ab.sequential_tuning_n)
        specs = metric_specs(metrics, ratios, covariates)
        looks = look_results(
            LearnerData.from_table(lt), specs, results["treatments"], opts, ab.looks
        )
    from learnops.ab.sequential import sequence_table

    sequence = sequence_table(looks, primary)
    truth = true_effects(params, experiment)
    return AbAnalysisResult(
        experiment=experiment,
        use_cuped=use_cuped,
        metrics=metrics,
        primary=primary,
        covariates=covariates,
        events=events,
        results=results,
        unadjusted=unadjusted,
        table=table,
        ci_widths=ci_widths(results, unadjusted),
        groups=groups_table(results),
        learners=learner_table(events, metrics),
        effects=effects_table(table, ab.control, truth),
        truth_known=truth is not None,
        cumulative=cumulative_effects(events, power_metric, control=ab.control, alpha=ab.alpha),
        sequence=sequence,
        crossings=crossings_table(sequence, ab.practical_threshold),
        power=power,
        decision_lines=decision_lines(results, covariates, power),
        summary=summary_table(experiment, events, results, primary, covariates),
        flat_metrics=flat,
    )
