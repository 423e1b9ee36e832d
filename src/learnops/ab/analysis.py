"""A/B analysis at the randomization unit (the learner): SRM check, per-metric tests of every
treatment against the control, Holm correction, CUPED, and the winner decision."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from learnops.ab.stats import (
    cuped_adjust,
    holm,
    mde,
    srm_test,
    two_proportion_test,
    welch_test,
)
from learnops.errors import LearnopsError
from learnops.io import jsonable, require_columns

DEFAULT_METRICS: tuple[str, ...] = ("accuracy", "engagement", "success")
#: decision outcome column → A/B metric name (see :func:`events_from_decisions`)
OUTCOME_METRICS: dict[str, str] = {
    "next_accuracy": "accuracy",
    "next_engagement": "engagement",
    "session_completed": "success",
}
#: declared ranges of the built-in metrics (values outside are refused by :func:`learner_table`)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "engagement": (0.0, 1.0),
    "success": (0.0, 1.0),
}
#: (winner or None, reason code, decision sentence)
Decision = tuple[str | None, str, str]
RESULT_KEYS: tuple[str, ...] = (
    "metric",
    "treatment",
    "control",
    "n_treatment",
    "n_control",
    "mean_treatment",
    "mean_control",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
)


# ---------------------------------------------------------------------------------------------
# input → one row per learner


def learner_table(
    events: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    covariates: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Aggregate EVENTS to one row per learner: ``learner_id, group, n_rows``, each metric's
    learner mean (NaNs skipped), ``n_<metric>`` (non-missing rows) and each covariate's mean.

    Raises LearnopsError on missing columns, non-numeric metrics or a learner in two groups.
    """
    if not isinstance(events, pd.DataFrame):
        raise LearnopsError("events must be a pandas DataFrame")
    metrics = _check_metrics(metrics)
    covariates = dict(covariates or {})
    id_col = _id_column(events)
    require_columns(events, ["group", *metrics], what="events")
    bad_cov = [m for m in covariates if m not in metrics]
    if bad_cov:
        raise LearnopsError(f"covariates given for unknown metric(s): {', '.join(bad_cov)}")
    require_columns(events, list(covariates.values()), what="events (covariates)")
    if events.empty:
        raise LearnopsError("events: no rows")
    if events[id_col].isna().any():
        raise LearnopsError(f"events: {int(events[id_col].isna().sum())} row(s) without {id_col}")
    if events["group"].isna().any():
        raise LearnopsError(f"events: {int(events['group'].isna().sum())} row(s) without a group")

    value_cols = list(dict.fromkeys([*metrics, *covariates.values()]))
    df = pd.DataFrame(
        {
            "learner_id": events[id_col].astype(str).to_numpy(),
            "group": events["group"].astype(str).to_numpy(),
        }
    )
    for col in value_cols:
        df[col] = _numeric(events[col], col)
        _check_values(df[col].to_numpy(), col)

    groups_per_learner = df.groupby("learner_id", sort=False)["group"].nunique()
    mixed = groups_per_learner[groups_per_learner > 1]
    if len(mixed):
        examples = ", ".join(map(str, mixed.index[:3]))
        raise LearnopsError(
            f"events: {len(mixed)} learner(s) appear in more than one group (e.g. {examples}); "
            "the randomization unit is the learner, so each must stay in one group"
        )

    g = df.groupby("learner_id", sort=True)
    out = g[value_cols].mean()
    counts = g[list(metrics)].count().add_prefix("n_")
    out = pd.concat([g["group"].first(), g.size().rename("n_rows"), out, counts], axis=1)
    return out.reset_index()


def _id_column(events: pd.DataFrame) -> str:
    for col in ("learner_id", "learner_hash"):
        if col in events.columns:
            return col
    raise LearnopsError("events: missing column(s): learner_id (or learner_hash)")


def _check_metrics(metrics: Sequence[str] | str) -> list[str]:
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = list(metrics)
    if not metrics:
        raise LearnopsError("no metrics given")
    if len(set(metrics)) != len(metrics):
        raise LearnopsError(f"duplicate metric names: {', '.join(metrics)}")
    return metrics


def _check_range(values: np.ndarray, name: str) -> None:
    """Refuse values outside the metric's declared range (:data:`METRIC_RANGES`)."""
    if name not in METRIC_RANGES:
        return
    lo, hi = METRIC_RANGES[name]
    bad = ~np.isnan(values) & ((values < lo) | (values > hi))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise LearnopsError(
            f"events: metric {name!r} must be in [{lo:g}, {hi:g}]; {int(bad.sum())} value(s) "
            f"outside, e.g. {values[first]:.6g} in row {first + 1}"
        )


def _check_values(values: np.ndarray, name: str) -> None:
    """Refuse infinite values and values so large that their variance overflows (missing
    values are allowed)."""
    present = ~np.isnan(values)
    if (present & ~np.isfinite(values)).any():
        bad = present & ~np.isfinite(values)
        raise LearnopsError(
            f"events: column {name!r} has {int(bad.sum())} non-finite value(s) (inf), "
            f"e.g. row {int(np.flatnonzero(bad)[0]) + 1}"
        )
    with np.errstate(over="ignore"):
        overflow = not np.isfinite(np.sum(np.square(values[present])))
    if overflow:
        raise LearnopsError(
            f"events: column {name!r} has values too large to analyze (their variance overflows)"
        )


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    if col.dtype == bool or str(col.dtype) == "boolean":
        return col.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        raise LearnopsError(
            f"events: column {name!r} must be numeric (e.g. {col[bad].iloc[0]!r} is not)"
        )
    return values.to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------------
# analysis


def analyze(
    events: pd.DataFrame,
    control: str = "gpt4",
    metrics: Sequence[str] = DEFAULT_METRICS,
    alpha: float = 0.05,
    practical_threshold: float = 0.01,
    min_sample_size: int = 100,
    planned_split: Mapping[str, float] | None = None,
    covariates: Mapping[str, str] | None = None,
    power: float = 0.8,
) -> dict[str, Any]:
    """Analyze an A/B test: compare every group with ``control`` on every metric.

    EVENTS has ``learner_id`` (or ``learner_hash``), ``group`` and one numeric column per metric
    (all "higher is better"); several rows per learner are averaged per learner first, so the
    learner — the randomization unit — is the unit of analysis. Continuous metrics (and binary
    metrics with several rows per learner) get Welch's t-test on learner means; a 0/1 metric
    with one row per learner gets the two-proportion z-test. ``covariates`` maps a metric to a
    pre-period column for CUPED (missing covariate values are mean-imputed); the reported means
    are then CUPED-adjusted (raw means in ``raw_mean_*``). P-values are Holm-adjusted over all
    comparisons; ``significant`` means p_adjusted < alpha. The SRM check compares learner counts
    with ``planned_split`` (default: equal). Returns the results.json dict (no NaNs: None).
    Infinite values, values whose variance overflows and values of a built-in metric outside
    its range (:data:`METRIC_RANGES`: accuracy, engagement, success in [0, 1]) are refused.
    """
    _check_options(alpha, practical_threshold)
    metrics = _check_metrics(metrics)
    covariates = dict(covariates or {})
    learners = learner_table(events, metrics, covariates)
    for m in metrics:  # the built-in metrics have declared ranges
        _check_range(_numeric(events[m], m), m)
    groups, treatments = _groups(learners, control)
    counts = learners["group"].value_counts()
    n_learners = {g: int(counts.get(g, 0)) for g in groups}
    n_rows = learners.groupby("group")["n_rows"].sum()
    srm = srm_test(n_learners, planned_split)
    comparisons = _compare_all(
        learners, metrics, control, treatments, alpha, covariates, power, practical_threshold
    )
    winner, reason, decision = _decide(
        comparisons, srm, n_learners, control, treatments, min_sample_size, practical_threshold
    )
    result = {
        "srm": srm,
        "comparisons": comparisons,
        "winner": winner,
        "decision": decision,
        "reason": reason,
        "control": control,
        "treatments": treatments,
        "metrics": metrics,
        "groups": {
            g: {"n_learners": n_learners[g], "n_rows": int(n_rows.get(g, 0))} for g in groups
        },
        "unit": "learner",
        "alpha": alpha,
        "correction": "holm",
        "practical_threshold": practical_threshold,
        "min_sample_size": min_sample_size,
        "power": power,
        "covariates": covariates,
    }
    return jsonable(result)


def _check_options(alpha: float, practical_threshold: float) -> None:
    if not 0 < alpha < 1:
        raise LearnopsError(f"alpha must be in (0, 1), got {alpha}")
    if practical_threshold < 0:
        raise LearnopsError(f"practical_threshold must be >= 0, got {practical_threshold}")


def _groups(learners: pd.DataFrame, control: str) -> tuple[list[str], list[str]]:
    """(all groups sorted, the treatments: every group but ``control``)."""
    groups = sorted(learners["group"].unique())
    if control not in groups:
        raise LearnopsError(
            f"control group {control!r} not found in events (groups: {', '.join(groups)})"
        )
    treatments = [g for g in groups if g != control]
    if not treatments:
        raise LearnopsError(f"events hold only the control group {control!r}; nothing to compare")
    return groups, treatments


def _compare_all(
    learners: pd.DataFrame,
    metrics: Sequence[str],
    control: str,
    treatments: Sequence[str],
    alpha: float,
    covariates: Mapping[str, str],
    power: float,
    practical_threshold: float,
) -> list[dict[str, Any]]:
    """Every metric × treatment comparison, Holm-adjusted over all of them."""
    comparisons: list[dict[str, Any]] = []
    for metric in metrics:
        comparisons.extend(
            _compare_metric(
                learners, metric, control, treatments, alpha, covariates.get(metric), power
            )
        )
    p_adj = holm([c["p_value"] for c in comparisons])
    for c, p in zip(comparisons, p_adj, strict=True):
        c["p_adjusted"] = float(p)
        c["significant"] = bool(np.isfinite(p) and p < alpha)
        c["practically_significant"] = bool(c["significant"] and c["diff"] > practical_threshold)
    return comparisons


def _compare_metric(
    learners: pd.DataFrame,
    metric: str,
    control: str,
    treatments: Iterable[str],
    alpha: float,
    covariate: str | None,
    power: float,
) -> list[dict[str, Any]]:
    have = learners[learners[metric].notna()]
    y = have[metric].to_numpy(dtype=float)
    theta = None
    if covariate is not None:
        y_adj, theta = cuped_adjust(y, have[covariate].to_numpy(dtype=float))
    else:
        y_adj = y
    one_row = bool((have[f"n_{metric}"] == 1).all())
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    use_z = one_row and binary and covariate is None
    grp = have["group"].to_numpy()
    in_c = grp == control
    yc, yc_raw = y_adj[in_c], y[in_c]
    rows_c = int(have.loc[in_c, f"n_{metric}"].sum())
    out = []
    for t in treatments:
        in_t = grp == t
        yt, yt_raw = y_adj[in_t], y[in_t]
        n_t, n_c = yt.size, yc.size
        if use_z:
            res = two_proportion_test(yt.sum(), n_t, yc.sum(), n_c, alpha=alpha)
            test, df = "two_proportion_z", None
        else:
            res = welch_test(_mean(yt), _var(yt), n_t, _mean(yc), _var(yc), n_c, alpha=alpha)
            test, df = "welch_t", float(res["df"])
        mean_t, mean_c = _mean(yt), _mean(yc)
        sd = _pooled_sd(yt, yc)
        ratio = n_t / n_c if n_c else math.nan
        mde_abs = (
            mde(n_c, sd, alpha=alpha, power=power, ratio=ratio)
            if n_c >= 2 and n_t >= 2 and sd > 0
            else math.nan
        )
        out.append(
            {
                "metric": metric,
                "treatment": t,
                "control": control,
                "n_treatment": int(n_t),
                "n_control": int(n_c),
                "rows_treatment": int(have.loc[in_t, f"n_{metric}"].sum()),
                "rows_control": rows_c,
                "mean_treatment": mean_t,
                "mean_control": mean_c,
                "sd_treatment": math.sqrt(_var(yt)) if n_t > 1 else math.nan,
                "sd_control": math.sqrt(_var(yc)) if n_c > 1 else math.nan,
                "diff": float(res["diff"]),
                "relative_lift": float(res["diff"]) / mean_c if mean_c else math.nan,
                "se": float(res["se"]),
                "statistic": float(res["statistic"]),
                "df": df,
                "ci_low": float(res["ci_low"]),
                "ci_high": float(res["ci_high"]),
                "ci_level": 1 - alpha,
                "p_value": float(res["p_value"]),
                "test": test,
                "mde": mde_abs,
                "cuped": covariate is not None,
                "covariate": covariate,
                "theta": theta,
                "raw_mean_treatment": _mean(yt_raw),
                "raw_mean_control": _mean(yc_raw),
                "raw_diff": _mean(yt_raw) - _mean(yc_raw),
                "variance_reduction": (
                    1 - _var(np.r_[yt, yc]) / _var(np.r_[yt_raw, yc_raw])
                    if covariate is not None and _var(np.r_[yt_raw, yc_raw]) > 0
                    else None
                ),
            }
        )
    return out


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else math.nan


def _var(a: np.ndarray) -> float:
    return float(a.var(ddof=1)) if a.size > 1 else math.nan


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    dof = a.size + b.size - 2
    if dof <= 0:
        return math.nan
    ss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    return float(math.sqrt(ss / dof))


def _decide(
    comparisons: list[dict[str, Any]],
    srm: dict[str, Any],
    n_learners: Mapping[str, int],
    control: str,
    treatments: Sequence[str],
    min_sample_size: int,
    threshold: float,
) -> Decision:
    """(winner, reason code, decision sentence)."""
    return (
        _not_ready(srm, n_learners, min_sample_size)
        or _winner(comparisons, control, treatments, threshold)
        or _no_winner(comparisons, control, treatments, threshold)
    )


def _not_ready(
    srm: dict[str, Any], n_learners: Mapping[str, int], min_sample_size: int
) -> Decision | None:
    """No winner yet when the split is off (SRM) or a group is below the min sample size."""
    if srm["mismatch"]:
        return (
            None,
            "srm",
            f"no winner yet: sample ratio mismatch (chi2={srm['chi2']:.1f}, "
            f"p={srm['p_value']:.2g} < {srm['threshold']}); fix assignment/logging first",
        )
    small = {g: n for g, n in n_learners.items() if n < min_sample_size}
    if small:
        detail = ", ".join(f"{g}: {n} learners" for g, n in sorted(small.items()))
        return (
            None,
            "min_sample_size",
            f"no winner yet: min sample size not reached ({detail} < {min_sample_size})",
        )
    return None


def _winner(
    comparisons: list[dict[str, Any]], control: str, treatments: Sequence[str], threshold: float
) -> Decision | None:
    """The treatment that beats the control by more than ``threshold`` on the most metrics
    (ties: the largest standardized effect) and is significantly worse on none."""
    qualified = []
    for t in treatments:
        mine = [c for c in comparisons if c["treatment"] == t]
        wins = [c for c in mine if c["significant"] and c["diff"] > threshold]
        losses = [c for c in mine if c["significant"] and c["diff"] < 0]
        if wins and not losses:
            best = max(abs(c["diff"]) / c["sd_control"] if c["sd_control"] else 0.0 for c in wins)
            qualified.append((len(wins), best, t, wins))
    if not qualified:
        return None
    qualified.sort(key=lambda q: (q[0], q[1]), reverse=True)
    _, _, t, wins = qualified[0]
    parts = "; ".join(
        f"{c['metric']} {c['diff']:+.4g} (CI {c['ci_low']:.4g}..{c['ci_high']:.4g}, "
        f"p_adj={c['p_adjusted']:.2g})"
        for c in wins
    )
    others = [q[2] for q in qualified[1:]]
    note = f"; also better than {control}: {', '.join(others)}" if others else ""
    return (
        t,
        "winner",
        f"winner: {t} beats {control} on {parts}, no metric significantly worse{note}",
    )


def _treatment_status(comparisons: list[dict[str, Any]], treatment: str, threshold: float) -> str:
    """mixed, below_practical_threshold, worse or not_significant (for a non-winner)."""
    mine = [c for c in comparisons if c["treatment"] == treatment and c["significant"]]
    better = any(c["diff"] > 0 for c in mine)
    worse = any(c["diff"] < 0 for c in mine)
    if better and worse:
        return "mixed"
    if better:
        return "below_practical_threshold"
    if any(c["diff"] < -threshold for c in mine):
        return "worse"
    return "not_significant"


def _no_winner(
    comparisons: list[dict[str, Any]], control: str, treatments: Sequence[str], threshold: float
) -> Decision:
    """The decision when no treatment qualifies: the control wins when every treatment is
    worse; otherwise no winner yet, for the most telling reason."""
    status = {t: _treatment_status(comparisons, t, threshold) for t in treatments}
    if all(s == "worse" for s in status.values()):
        return (
            control,
            "control_better",
            f"winner: control {control}; every treatment is significantly worse on some metric "
            "and better on none",
        )
    if "below_practical_threshold" in status.values():
        return (
            None,
            "below_practical_threshold",
            "no winner yet: significant improvements are below the practical threshold "
            f"({threshold})",
        )
    if "mixed" in status.values():
        return (
            None,
            "mixed",
            "no winner yet: every significantly better treatment is also significantly worse "
            "on another metric",
        )
    return (
        None,
        "not_significant",
        f"no winner yet: no treatment is significantly better than {control} after Holm correction",
    )


# ---------------------------------------------------------------------------------------------
# decisions → events, time course, flat metrics


def events_from_decisions(decisions: pd.DataFrame, experiment: str | None = None) -> pd.DataFrame:
    """Turn exported decisions into EVENTS for :func:`analyze`.

    Keeps the decisions of ``experiment`` (default: the only A/B test present) that have an
    ab_group: ``learner_id`` (= learner_hash), ``group`` (= ab_group), ``timestamp``,
    ``accuracy`` (next_accuracy), ``engagement`` (next_engagement), ``success``
    (session_completed as 0/1), plus ``decision_id`` when present. Adds per-learner CUPED
    covariates ``pre_accuracy``, ``pre_engagement``, ``pre_success``: the learner's mean over
    decisions outside any A/B test before the experiment's first timestamp (NaN when none).
    """
    require_columns(
        decisions,
        ["learner_hash", "timestamp", "ab_test", "ab_group", *OUTCOME_METRICS],
        what="decisions",
    )
    d = decisions
    ts = pd.to_datetime(d["timestamp"], utc=True)
    in_ab = d["ab_test"].notna() & d["ab_group"].notna()
    names = sorted(d.loc[in_ab, "ab_test"].astype(str).unique())
    if not names:
        raise LearnopsError("decisions: no rows belong to an A/B test (ab_test/ab_group empty)")
    if experiment is None:
        if len(names) > 1:
            raise LearnopsError(
                f"decisions hold several A/B tests ({', '.join(names)}); choose one"
            )
        experiment = names[0]
    elif experiment not in names:
        raise LearnopsError(f"A/B test {experiment!r} not in decisions (found: {', '.join(names)})")
    sel = in_ab & (d["ab_test"].astype(str) == experiment)
    start = ts[sel].min()

    outcome = {}
    for col, metric in OUTCOME_METRICS.items():
        outcome[metric] = _numeric(d[col], col)
    events = pd.DataFrame(
        {
            "learner_id": d.loc[sel, "learner_hash"].astype(str).to_numpy(),
            "group": d.loc[sel, "ab_group"].astype(str).to_numpy(),
            "timestamp": ts[sel].to_numpy(),
            **{m: v[sel.to_numpy()] for m, v in outcome.items()},
        }
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    if "decision_id" in d.columns:
        events.insert(0, "decision_id", d.loc[sel, "decision_id"].to_numpy())

    pre_mask = (~d["ab_test"].notna() & ~d["ab_group"].notna() & (ts < start)).to_numpy()
    pre = pd.DataFrame(
        {"learner_id": d.loc[pre_mask, "learner_hash"].astype(str).to_numpy()}
        | {f"pre_{m}": v[pre_mask] for m, v in outcome.items()}
    )
    pre_means = pre.groupby("learner_id").mean()
    events = events.merge(pre_means, how="left", left_on="learner_id", right_index=True)
    for m in outcome:
        if f"pre_{m}" not in events:
            events[f"pre_{m}"] = np.nan
    events = events.sort_values(["timestamp", "learner_id"], kind="mergesort")
    events.attrs["experiment"] = experiment
    return events.reset_index(drop=True)


def cumulative_effects(
    events: pd.DataFrame,
    metric: str,
    control: str = "gpt4",
    alpha: float = 0.05,
    freq: str = "D",
) -> pd.DataFrame:
    """The effect estimate of each treatment vs control on ``metric`` using all events up to the
    end of each period (learner-level Welch; unadjusted CI), for a time-course plot."""
    require_columns(events, ["timestamp", "group", metric], what="events")
    ts = pd.to_datetime(events["timestamp"], utc=True)
    ends = sorted(ts.dt.floor(freq).unique())
    rows = []
    for end in ends:
        upto = events[ts < end + pd.Timedelta(1, unit=freq)]
        lt = learner_table(upto, [metric])
        lt = lt[lt[metric].notna()]
        yc = lt.loc[lt["group"] == control, metric].to_numpy()
        for t in sorted(set(lt["group"]) - {control}):
            yt = lt.loc[lt["group"] == t, metric].to_numpy()
            if yt.size < 2 or yc.size < 2:
                continue
            r = welch_test(yt.mean(), _var(yt), yt.size, yc.mean(), _var(yc), yc.size, alpha)
            rows.append(
                {
                    "date": end,
                    "treatment": t,
                    "n_treatment": yt.size,
                    "n_control": yc.size,
                    "diff": float(r["diff"]),
                    "ci_low": float(r["ci_low"]),
                    "ci_high": float(r["ci_high"]),
                    "p_value": float(r["p_value"]),
                }
            )
    cols = ["date", "treatment", "n_treatment", "n_control", "diff", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=[*cols, "p_value"])


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float | int]:
    """A flat, numbers-only summary of :func:`analyze` results (for DVC metrics)."""
    out: dict[str, float | int] = {
        "srm_p_value": results["srm"]["p_value"],
        "srm_mismatch": int(results["srm"]["mismatch"]),
        "has_winner": int(results["winner"] is not None),
    }
    for g, info in results["groups"].items():
        out[f"n_learners_{g}"] = info["n_learners"]
    for c in results["comparisons"]:
        key = f"{c['metric']}_{c['treatment']}"
        for field in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted"):
            out[f"{key}_{field}"] = c[field]
        out[f"{key}_significant"] = int(c["significant"])
    return {k: v for k, v in out.items() if v is not None}
