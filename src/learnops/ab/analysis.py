"""A/B analysis at the randomization unit (the learner): SRM check against the planned split,
per-metric comparisons of every treatment with the control (learner means, CUPED, ratio metrics
by the delta method), fixed-horizon or anytime-valid sequential inference, Holm or BH correction,
repeated looks, and the winner decision by a primary metric with guardrails.

Methods (``method``):

- ``fixed``: Welch's t-test on learner means (two-proportion z-test for a 0/1 metric with one row
  per learner), normal CIs for ratio metrics. Valid for one look at a sample size fixed in
  advance; looking every day and stopping at the first significant look inflates the
  false-positive rate.
- ``sequential``: the asymptotic confidence sequence of :mod:`learnops.ab.sequential` around the
  same estimate and standard error: valid at every look (a running experiment).

Winner rule: a treatment wins when, on the **primary metric**, its adjusted p-value is below
alpha *and* the lower bound of its CI (CS) exceeds the practical threshold, and no guardrail
(every other metric) fails: with a non-inferiority margin δ for the metric the CI's lower bound
must stay above −δ, without one the metric must not be significantly worse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from learnops.ab.ratio import ratio_compare, relative_lift
from learnops.ab.sequential import DEFAULT_TUNING_N, confidence_sequence
from learnops.ab.stats import (
    SRM_ALPHA,
    _impute_mean,
    adjust_p,
    cuped_adjust,
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
#: columns that mark a table as exported decisions (mapped by :func:`events_from_decisions`)
DECISION_MARKERS: tuple[str, ...] = ("learner_hash", "ab_test", "ab_group", *OUTCOME_METRICS)
#: declared ranges of the built-in metrics (values outside are refused by :func:`learner_table`)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "engagement": (0.0, 1.0),
    "success": (0.0, 1.0),
}
METHODS: tuple[str, ...] = ("fixed", "sequential")
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
#: the keys of one comparison in a look (``results["looks"][k]["comparisons"]``)
LOOK_KEYS: tuple[str, ...] = (
    "metric",
    "treatment",
    "n_treatment",
    "n_control",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
    "fixed_ci_low",
    "fixed_ci_high",
)


# ---------------------------------------------------------------------------------------------
# input → one row per learner


def learner_table(
    events: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    covariates: Mapping[str, str] | None = None,
    ratio_metrics: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Aggregate EVENTS to one row per learner: ``learner_id, group, n_rows``, each metric's
    learner mean (NaNs skipped), ``n_<metric>`` (non-missing rows) and each covariate's mean.
    A ratio metric ``name: [num, den]`` adds ``name__num``/``name__den`` (the learner's sums over
    rows where both are present), ``name`` (their ratio) and ``n_name``. Learners are sorted by
    id; ``first_seen`` is the order of their first event (by ``timestamp`` when present, else by
    row).

    Raises LearnopsError on missing columns, non-numeric metrics or a learner in two groups.
    """
    if not isinstance(events, pd.DataFrame):
        raise LearnopsError("events must be a pandas DataFrame")
    metrics = list(metrics) if metrics else []
    if metrics:
        metrics = _check_metrics(metrics)
    ratios = _check_ratio_metrics(ratio_metrics, metrics)
    if not metrics and not ratios:
        raise LearnopsError("no metrics given")
    covariates = dict(covariates or {})
    id_col = _id_column(events)
    ratio_cols = list(dict.fromkeys(c for pair in ratios.values() for c in pair))
    require_columns(events, ["group", *metrics, *ratio_cols], what="events")
    bad_cov = [m for m in covariates if m not in metrics and m not in ratios]
    if bad_cov:
        raise LearnopsError(f"covariates given for unknown metric(s): {', '.join(bad_cov)}")
    require_columns(events, list(covariates.values()), what="events (covariates)")
    if events.empty:
        raise LearnopsError("events: no rows")
    if events[id_col].isna().any():
        raise LearnopsError(f"events: {int(events[id_col].isna().sum())} row(s) without {id_col}")
    if events["group"].isna().any():
        raise LearnopsError(f"events: {int(events['group'].isna().sum())} row(s) without a group")

    value_cols = list(dict.fromkeys([*metrics, *covariates.values(), *ratio_cols]))
    df = pd.DataFrame(
        {
            "learner_id": events[id_col].astype(str).to_numpy(),
            "group": events["group"].astype(str).to_numpy(),
        }
    )
    for col in value_cols:
        df[col] = _numeric(events[col], col)
        _check_values(df[col].to_numpy(), col)
    for name, (num, den) in ratios.items():
        both = df[num].notna() & df[den].notna()
        if (df.loc[both, den] < 0).any():
            raise LearnopsError(f"events: ratio metric {name!r}: denominator {den!r} must be >= 0")
        df[f"{name}__num"] = df[num].where(both)
        df[f"{name}__den"] = df[den].where(both)

    groups_per_learner = df.groupby("learner_id", sort=False)["group"].nunique()
    mixed = groups_per_learner[groups_per_learner > 1]
    if len(mixed):
        examples = ", ".join(map(str, mixed.index[:3]))
        raise LearnopsError(
            f"events: {len(mixed)} learner(s) appear in more than one group (e.g. {examples}); "
            "the randomization unit is the learner, so each must stay in one group"
        )

    g = df.groupby("learner_id", sort=True)
    parts = [g["group"].first(), g.size().rename("n_rows")]
    mean_cols = list(dict.fromkeys([*metrics, *covariates.values()]))
    if mean_cols:
        parts.append(g[mean_cols].mean())
    if metrics:
        parts.append(g[metrics].count().add_prefix("n_"))
    for name in ratios:
        num = g[f"{name}__num"].sum(min_count=1).rename(f"{name}__num")
        den = g[f"{name}__den"].sum(min_count=1).rename(f"{name}__den")
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (num / den).replace([np.inf, -np.inf], np.nan).rename(name)
        parts += [num, den, value, g[f"{name}__num"].count().rename(f"n_{name}")]
    out = pd.concat(parts, axis=1)
    out["first_seen"] = _first_seen(events, df["learner_id"]).reindex(out.index).to_numpy()
    return out.reset_index()


def _first_seen(events: pd.DataFrame, learner: pd.Series) -> pd.Series:
    """Rank of each learner's first event (0 = first): by timestamp when EVENTS has one (ties
    and missing times by row order), else by row order."""
    pos = pd.Series(np.arange(len(learner)), index=learner.to_numpy())
    if "timestamp" in events.columns:
        ts = pd.to_datetime(events["timestamp"], utc=True, errors="coerce")
        key = pd.DataFrame(
            {"learner_id": learner.to_numpy(), "ts": ts.to_numpy(), "pos": np.arange(len(ts))}
        )
        first = key.groupby("learner_id").agg(ts=("ts", "min"), pos=("pos", "min"))
        first = first.sort_values(["ts", "pos"], kind="mergesort", na_position="last")
    else:
        first = pos.groupby(level=0).min().sort_values(kind="mergesort").to_frame("pos")
    return pd.Series(np.arange(len(first)), index=first.index)


def _check_ratio_metrics(
    ratio_metrics: Mapping[str, Sequence[str]] | None, metrics: Sequence[str]
) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name, pair in dict(ratio_metrics or {}).items():
        if isinstance(pair, str) or len(pair) != 2:
            raise LearnopsError(
                f"ratio metric {name!r} must be [numerator, denominator], got {pair!r}"
            )
        if name in metrics:
            raise LearnopsError(f"{name!r} is both a metric and a ratio metric")
        if name in pair:
            raise LearnopsError(f"ratio metric {name!r} must not be named like its columns")
        out[str(name)] = (str(pair[0]), str(pair[1]))
    return out


def is_decisions_table(df: pd.DataFrame) -> bool:
    """True for exported decisions (``learner_hash``, ``ab_test``, ``ab_group`` and the outcome
    columns), which :func:`events_from_decisions` maps to EVENTS."""
    return all(c in df.columns for c in DECISION_MARKERS) and "group" not in df.columns


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


@dataclass(frozen=True)
class Options:
    """Settings of one analysis (see :func:`analyze`)."""

    control: str = "gpt4"
    alpha: float = 0.05
    method: str = "fixed"
    correction: str = "holm"
    tuning_n: float = DEFAULT_TUNING_N
    power: float = 0.8
    practical_threshold: float = 0.01
    #: compute the (fixed-horizon) MDE of every comparison (slow-ish: off for looks and A/A runs)
    with_mde: bool = True


@dataclass(frozen=True)
class MetricSpec:
    """One analysed metric: ``kind`` ``mean`` (learner means) or ``ratio`` (ratio of sums)."""

    name: str
    kind: str = "mean"
    covariate: str | None = None
    num: str | None = None
    den: str | None = None


@dataclass
class LearnerData:
    """Learner-level arrays (one entry per learner, in order of first event): ``group`` and
    every column :func:`learner_table` made. ``head(n)`` is the first n learners (a look),
    ``regroup(g)`` the same learners under another assignment (the A/A harness)."""

    group: np.ndarray
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_table(cls, learners: pd.DataFrame) -> LearnerData:
        lt = learners.sort_values("first_seen", kind="mergesort")
        cols = {
            c: lt[c].to_numpy(dtype=float)
            for c in lt.columns
            if c not in ("learner_id", "group") and pd.api.types.is_numeric_dtype(lt[c])
        }
        return cls(lt["group"].astype(str).to_numpy(), cols)

    def __len__(self) -> int:
        return len(self.group)

    def head(self, n: int) -> LearnerData:
        return LearnerData(self.group[:n], {k: v[:n] for k, v in self.cols.items()})

    def regroup(self, group: np.ndarray) -> LearnerData:
        return LearnerData(np.asarray(group), self.cols)


def metric_specs(
    metrics: Sequence[str],
    ratio_metrics: Mapping[str, Sequence[str]] | None = None,
    covariates: Mapping[str, str] | None = None,
) -> list[MetricSpec]:
    """The analysed metrics in result order: the mean metrics, then the ratio metrics."""
    covariates = dict(covariates or {})
    specs = [MetricSpec(m, "mean", covariates.get(m)) for m in metrics]
    for name, (num, den) in _check_ratio_metrics(ratio_metrics, metrics).items():
        specs.append(MetricSpec(name, "ratio", covariates.get(name), num, den))
    return specs


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
    *,
    method: str = "fixed",
    correction: str = "holm",
    ratio_metrics: Mapping[str, Sequence[str]] | None = None,
    primary_metric: str | None = None,
    guardrail_margins: Mapping[str, float] | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
    looks: int | None = None,
    plan_source: str | None = None,
) -> dict[str, Any]:
    """Analyze an A/B test: compare every group with ``control`` on every metric.

    EVENTS has ``learner_id`` (or ``learner_hash``), ``group`` and one numeric column per metric
    (all "higher is better"); several rows per learner are averaged per learner first, so the
    learner — the randomization unit — is the unit of analysis. Continuous metrics (and binary
    metrics with several rows per learner) get Welch's t-test on learner means; a 0/1 metric
    with one row per learner gets the two-proportion z-test. ``ratio_metrics`` maps a name to
    ``[numerator, denominator]`` columns: ratio of sums per arm, delta-method variance
    (:mod:`learnops.ab.ratio`). ``covariates`` maps a metric to a pre-period column for CUPED
    (missing covariate values are mean-imputed); the reported means are then CUPED-adjusted
    (raw means in ``raw_mean_*``).

    ``method`` ``fixed`` (fixed-horizon tests) or ``sequential`` (anytime-valid confidence
    sequences, tuned by ``tuning_n``; the fixed-horizon CI is kept in ``fixed_ci_*``). P-values
    are adjusted over all comparisons by ``correction`` (``holm`` or ``bh``); ``significant``
    means p_adjusted < alpha. Every comparison also has the relative lift with its delta-method
    CI (``rel_ci_low``, ``rel_ci_high``).

    The SRM check compares learner counts with ``planned_split``; without one it is not run
    (``srm.checked`` false). ``looks`` = K repeats the analysis at K equally spaced cumulative
    learner counts (learners in order of their first event) into ``results["looks"]``.

    The winner is decided on ``primary_metric`` (default engagement when analysed, else the
    first metric) with the others as guardrails (``guardrail_margins``: non-inferiority
    margins); see the module docstring. Returns the results.json dict (no NaNs: None).
    Infinite values, values whose variance overflows and values of a built-in metric outside
    its range (:data:`METRIC_RANGES`: accuracy, engagement, success in [0, 1]) are refused.
    """
    _check_options(alpha, practical_threshold)
    if method not in METHODS:
        raise LearnopsError(f"method must be fixed or sequential, not {method!r}")
    adjust_p([], correction)  # validates the name
    if not tuning_n > 0:
        raise LearnopsError(f"tuning_n must be > 0, got {tuning_n}")
    metrics = _check_metrics(metrics) if metrics else []
    covariates = dict(covariates or {})
    specs = metric_specs(metrics, ratio_metrics, covariates)
    learners = learner_table(events, metrics, covariates, ratio_metrics)
    for m in metrics:  # the built-in metrics have declared ranges
        _check_range(_numeric(events[m], m), m)
    groups, treatments = _groups(learners, control)
    names = [s.name for s in specs]
    primary = primary_metric or ("engagement" if "engagement" in names else names[0])
    if primary not in names:
        raise LearnopsError(f"primary metric {primary!r} is not analysed ({', '.join(names)})")
    margins = {str(k): float(v) for k, v in dict(guardrail_margins or {}).items()}
    bad = [m for m, v in margins.items() if not (v >= 0 and math.isfinite(v))]
    if bad:
        raise LearnopsError(f"guardrail margins must be finite and >= 0 ({', '.join(bad)})")
    opts = Options(control, alpha, method, correction, tuning_n, power, practical_threshold)

    counts = learners["group"].value_counts()
    n_learners = {g: int(counts.get(g, 0)) for g in groups}
    n_rows = learners.groupby("group")["n_rows"].sum()
    srm = srm_check(n_learners, planned_split, plan_source)
    data = LearnerData.from_table(learners)
    comparisons = compare_all(data, specs, treatments, opts)
    winner, reason, decision = _decide(
        comparisons, srm, n_learners, control, treatments, min_sample_size, practical_threshold,
        primary, margins,
    )  # fmt: skip
    result = {
        "srm": srm,
        "comparisons": comparisons,
        "winner": winner,
        "decision": decision,
        "reason": reason,
        "control": control,
        "treatments": treatments,
        "metrics": names,
        "ratio_metrics": {s.name: [s.num, s.den] for s in specs if s.kind == "ratio"},
        "primary_metric": primary,
        "guardrail_margins": margins,
        "groups": {
            g: {"n_learners": n_learners[g], "n_rows": int(n_rows.get(g, 0))} for g in groups
        },
        "unit": "learner",
        "alpha": alpha,
        "method": method,
        "correction": correction,
        "sequential_tuning_n": tuning_n if method == "sequential" else None,
        "practical_threshold": practical_threshold,
        "min_sample_size": min_sample_size,
        "power": power,
        "covariates": covariates,
    }
    if looks is not None:
        result["looks"] = look_results(data, specs, treatments, opts, looks)
    return jsonable(result)


def look_sizes(n: int, looks: int) -> list[int]:
    """K equally spaced cumulative learner counts ending at n (duplicates removed)."""
    if isinstance(looks, bool) or not isinstance(looks, (int, np.integer)) or looks < 1:
        raise LearnopsError(f"looks must be an integer >= 1, got {looks!r}")
    return sorted({max(1, round(n * k / looks)) for k in range(1, looks + 1)})


def look_results(
    data: LearnerData,
    specs: Sequence[MetricSpec],
    treatments: Sequence[str],
    opts: Options,
    looks: int,
) -> list[dict[str, Any]]:
    """The analysis at each of ``looks`` cumulative learner counts (first learners first):
    ``[{"look", "n_learners", "comparisons": [{LOOK_KEYS…}]}]``. A comparison that cannot be
    computed yet (an arm without learners) is left out of its look."""
    out = []
    opts = replace(opts, with_mde=False)
    for k, n in enumerate(look_sizes(len(data), looks), start=1):
        part = data.head(n)
        comps = compare_all(part, specs, treatments, opts, strict=False)
        out.append(
            {
                "look": k,
                "n_learners": int(n),
                "comparisons": [{key: c.get(key) for key in LOOK_KEYS} for c in comps],
            }
        )
    return out


def srm_check(
    observed: Mapping[str, int],
    planned: Mapping[str, float] | None,
    source: str | None = None,
) -> dict[str, Any]:
    """:func:`srm_test` against the planned split, or — when no plan is known — a record that
    the check was not run (``checked`` false, never a test against equal shares)."""
    if planned is None:
        return {
            "checked": False,
            "test": None,
            "chi2": None,
            "df": None,
            "p_value": None,
            "observed": {g: int(n) for g, n in observed.items()},
            "expected": {},
            "planned_split": None,
            "plan_source": None,
            "threshold": SRM_ALPHA,
            "mismatch": False,
            "note": "SRM not checked: no planned split known (give --planned-split, or analyse "
            "the experiment's decisions with its record or params)",
        }
    out = srm_test(observed, planned)
    out["checked"] = True
    out["plan_source"] = source or "given"
    return out


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


def compare_all(
    data: LearnerData,
    specs: Sequence[MetricSpec],
    treatments: Sequence[str],
    opts: Options,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """Every metric × treatment comparison, adjusted over all of them by ``opts.correction``.
    With ``strict`` false, comparisons with an empty arm are left out instead of computed as
    undefined."""
    comparisons: list[dict[str, Any]] = []
    for spec in specs:
        comparisons.extend(_compare_metric(data, spec, treatments, opts, strict))
    p_adj = adjust_p([_nan(c["p_value"]) for c in comparisons], opts.correction)
    for c, p in zip(comparisons, p_adj, strict=True):
        c["p_adjusted"] = float(p)
        c["significant"] = bool(np.isfinite(p) and p < opts.alpha)
        c["practically_significant"] = bool(
            c["significant"]
            and c["ci_low"] is not None
            and np.isfinite(c["ci_low"])
            and c["ci_low"] > opts.practical_threshold
        )
    return comparisons


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _compare_metric(
    data: LearnerData,
    spec: MetricSpec,
    treatments: Iterable[str],
    opts: Options,
    strict: bool = True,
) -> list[dict[str, Any]]:
    if spec.kind == "ratio":
        return _compare_ratio(data, spec, treatments, opts, strict)
    metric, covariate, alpha = spec.name, spec.covariate, opts.alpha
    y_all = data.cols[metric]
    have = ~np.isnan(y_all)
    y = y_all[have]
    n_rows = data.cols[f"n_{metric}"][have]
    theta = None
    if covariate is not None:
        y_adj, theta = cuped_adjust(y, data.cols[covariate][have])
    else:
        y_adj = y
    one_row = bool((n_rows == 1).all())
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    use_z = one_row and binary and covariate is None
    grp = data.group[have]
    in_c = grp == opts.control
    yc, yc_raw = y_adj[in_c], y[in_c]
    rows_c = int(n_rows[in_c].sum())
    out = []
    for t in treatments:
        in_t = grp == t
        yt, yt_raw = y_adj[in_t], y[in_t]
        n_t, n_c = yt.size, yc.size
        if not strict and (n_t == 0 or n_c == 0):
            continue
        if use_z:
            res = two_proportion_test(yt.sum(), n_t, yc.sum(), n_c, alpha=alpha)
            test, df = "two_proportion_z", None
            var_mt = _mean(yt) * (1 - _mean(yt)) / n_t if n_t else math.nan
            var_mc = _mean(yc) * (1 - _mean(yc)) / n_c if n_c else math.nan
        else:
            res = welch_test(_mean(yt), _var(yt), n_t, _mean(yc), _var(yc), n_c, alpha=alpha)
            test, df = "welch_t", float(res["df"])
            var_mt = _var(yt) / n_t if n_t else math.nan
            var_mc = _var(yc) / n_c if n_c else math.nan
        mean_t, mean_c = _mean(yt), _mean(yc)
        sd = _pooled_sd(yt, yc)
        ratio = n_t / n_c if n_c else math.nan
        mde_abs = (
            mde(n_c, sd, alpha=alpha, power=opts.power, ratio=ratio)
            if opts.with_mde and n_c >= 2 and n_t >= 2 and sd > 0
            else math.nan
        )
        c = {
            "metric": metric,
            "kind": "mean",
            "treatment": t,
            "control": opts.control,
            "n_treatment": int(n_t),
            "n_control": int(n_c),
            "rows_treatment": int(n_rows[in_t].sum()),
            "rows_control": rows_c,
            "mean_treatment": mean_t,
            "mean_control": mean_c,
            "sd_treatment": math.sqrt(_var(yt)) if n_t > 1 else math.nan,
            "sd_control": math.sqrt(_var(yc)) if n_c > 1 else math.nan,
            "diff": float(res["diff"]),
            "se": float(res["se"]),
            "statistic": float(res["statistic"]),
            "df": df,
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
        _finish(c, float(res["ci_low"]), float(res["ci_high"]), float(res["p_value"]),
                var_mt, var_mc, opts)  # fmt: skip
        out.append(c)
    return out


def _compare_ratio(
    data: LearnerData,
    spec: MetricSpec,
    treatments: Iterable[str],
    opts: Options,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """Ratio-of-sums comparisons by the delta method (normal CI), CUPED when a covariate is
    given (pooled θ on the linearized values)."""
    from scipy import stats

    a_all, b_all = data.cols[f"{spec.name}__num"], data.cols[f"{spec.name}__den"]
    have = ~np.isnan(a_all) & ~np.isnan(b_all)
    a, b, grp = a_all[have], b_all[have], data.group[have]
    n_rows = data.cols[f"n_{spec.name}"][have]
    x = None
    if spec.covariate is not None:
        x = _impute_mean(data.cols[spec.covariate][have])
    in_c = grp == opts.control
    z = stats.norm.ppf(1 - opts.alpha / 2)
    out = []
    for t in treatments:
        in_t = grp == t
        n_t, n_c = int(in_t.sum()), int(in_c.sum())
        if not strict and (n_t == 0 or n_c == 0):
            continue
        # CUPED: θ pooled over the two arms compared
        xs = (x[in_t], x[in_c]) if x is not None else (None, None)
        r = ratio_compare(a[in_t], b[in_t], a[in_c], b[in_c], *xs)
        diff, se = r["diff"], r["se"]
        with np.errstate(divide="ignore", invalid="ignore"):
            zstat = diff / se if se > 0 else math.nan
        p = float(2 * stats.norm.sf(abs(zstat))) if math.isfinite(zstat) else math.nan
        c = {
            "metric": spec.name,
            "kind": "ratio",
            "numerator": spec.num,
            "denominator": spec.den,
            "treatment": t,
            "control": opts.control,
            "n_treatment": n_t,
            "n_control": n_c,
            "rows_treatment": int(n_rows[in_t].sum()),
            "rows_control": int(n_rows[in_c].sum()),
            "mean_treatment": r["mean_t"],
            "mean_control": r["mean_c"],
            "sd_treatment": math.sqrt(r["var_t"] * n_t) if n_t > 1 else math.nan,
            "sd_control": math.sqrt(r["var_c"] * n_c) if n_c > 1 else math.nan,
            "diff": diff,
            "se": se,
            "statistic": zstat,
            "df": None,
            "test": "delta_method_z",
            "mde": _ratio_mde(r, n_t, n_c, opts),
            "cuped": spec.covariate is not None,
            "covariate": spec.covariate,
            "theta": r["theta"],
            "raw_mean_treatment": r["raw_t"],
            "raw_mean_control": r["raw_c"],
            "raw_diff": r["raw_t"] - r["raw_c"],
            "variance_reduction": (
                1 - (r["var_t"] + r["var_c"]) / (r["var_raw_t"] + r["var_raw_c"])
                if spec.covariate is not None and (r["var_raw_t"] + r["var_raw_c"]) > 0
                else None
            ),
        }
        _finish(c, diff - z * se, diff + z * se, p, r["var_t"], r["var_c"], opts)
        out.append(c)
    return out


def _ratio_mde(r: dict[str, Any], n_t: int, n_c: int, opts: Options) -> float:
    """Fixed-horizon MDE of a ratio metric: the normal MDE for its delta-method se."""
    from scipy import stats

    se = r["se"]
    if not (n_t >= 2 and n_c >= 2 and se > 0 and math.isfinite(se)):
        return math.nan
    return float((stats.norm.ppf(1 - opts.alpha / 2) + stats.norm.ppf(opts.power)) * se)


def _finish(
    c: dict[str, Any],
    ci_low: float,
    ci_high: float,
    p_value: float,
    var_mt: float,
    var_mc: float,
    opts: Options,
) -> None:
    """Add the interval, p-value and relative lift of comparison ``c`` for ``opts.method``
    (sequential: the CS around the same estimate; the fixed-horizon CI kept as fixed_ci_*)."""
    from scipy import stats

    mt, mc = c["mean_treatment"], c["mean_control"]
    rel, rel_se = relative_lift(mt, var_mt, mc, var_mc)
    c["relative_lift"] = rel
    c["fixed_ci_low"], c["fixed_ci_high"], c["fixed_p_value"] = ci_low, ci_high, p_value
    if opts.method == "sequential":
        n = c["n_treatment"] + c["n_control"]
        cs = confidence_sequence(c["diff"], c["se"], n, opts.alpha, opts.tuning_n)
        mult = float(cs["multiplier"])
        c["ci_low"], c["ci_high"] = float(cs["ci_low"]), float(cs["ci_high"])
        c["p_value"] = float(cs["p_value"])
        c["cs_multiplier"] = mult
    else:
        mult = float(stats.norm.ppf(1 - opts.alpha / 2))
        c["ci_low"], c["ci_high"], c["p_value"] = ci_low, ci_high, p_value
    c["rel_ci_low"], c["rel_ci_high"] = rel - mult * rel_se, rel + mult * rel_se
    c["ci_level"] = 1 - opts.alpha
    c["method"] = opts.method


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


# ---------------------------------------------------------------------------------------------
# settings from params


def params_kwargs(ab: Any, columns: Iterable[str] | None = None) -> dict[str, Any]:
    """:func:`analyze` keyword arguments from the ``ab`` params section (an ``AbConfig``):
    control, metrics, alpha, thresholds, method, correction, tuning, ratio metrics, primary
    metric and guardrail margins. With ``columns`` (the events' columns), metrics and ratio
    metrics whose columns are missing are left out, and the primary metric falls back to the
    default when it is not analysed."""
    cols = set(columns) if columns is not None else None
    metrics = [m for m in ab.metrics if cols is None or m in cols]
    ratios = {
        k: list(v)
        for k, v in dict(ab.ratio_metrics).items()
        if cols is None or (v[0] in cols and v[1] in cols)
    }
    names = [*metrics, *ratios]
    primary = ab.primary_metric if ab.primary_metric in names else None
    return {
        "control": ab.control,
        "metrics": metrics,
        "alpha": ab.alpha,
        "practical_threshold": ab.practical_threshold,
        "min_sample_size": ab.min_sample_size,
        "power": ab.power,
        "method": ab.method,
        "correction": ab.correction,
        "tuning_n": ab.sequential_tuning_n,
        "ratio_metrics": ratios,
        "primary_metric": primary,
        "guardrail_margins": {k: v for k, v in dict(ab.guardrail_margins).items() if k in names},
    }


def planned_split_for(
    params: Any, experiment: str | None = None, record: Mapping[str, float] | None = None
) -> tuple[dict[str, float] | None, str | None]:
    """(planned split, where it came from) for the SRM check: the experiment's record (its arms
    in the store), else ``ab.planned_split``, else ``simulate.ab_groups`` when ``experiment``
    is the simulator's (``simulate.ab_test``); (None, None) when no plan is known."""
    if record:
        return dict(record), "experiment record"
    if params is None:
        return None, None
    if params.ab.planned_split:
        return dict(params.ab.planned_split), "params ab.planned_split"
    if experiment is not None and experiment == params.simulate.ab_test:
        return dict(params.simulate.ab_groups), "params simulate.ab_groups"
    return None, None


# ---------------------------------------------------------------------------------------------
# decision


def _decide(
    comparisons: list[dict[str, Any]],
    srm: dict[str, Any],
    n_learners: Mapping[str, int],
    control: str,
    treatments: Sequence[str],
    min_sample_size: int,
    threshold: float,
    primary: str,
    margins: Mapping[str, float],
) -> Decision:
    """(winner, reason code, decision sentence)."""
    status = {t: _status(comparisons, t, primary, margins, threshold) for t in treatments}
    return (
        _not_ready(srm, n_learners, min_sample_size)
        or _winner(comparisons, status, control, primary, threshold)
        or _no_winner(status, control, primary, threshold)
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


def _fails_guardrail(c: dict[str, Any], margins: Mapping[str, float]) -> bool:
    """A guardrail fails when its CI's lower bound is below −margin (non-inferiority, when the
    metric has a margin) or, without a margin, when it is significantly worse."""
    margin = margins.get(c["metric"])
    if margin is not None:
        lo = c["ci_low"]
        return lo is None or not np.isfinite(lo) or lo < -margin
    return bool(c["significant"] and c["diff"] < 0)


def _status(
    comparisons: list[dict[str, Any]],
    treatment: str,
    primary: str,
    margins: Mapping[str, float],
    threshold: float,
) -> dict[str, Any]:
    mine = [c for c in comparisons if c["treatment"] == treatment]
    p = next(c for c in mine if c["metric"] == primary)
    lo, hi = _nan(p["ci_low"]), _nan(p["ci_high"])
    failing = [c for c in mine if c["metric"] != primary and _fails_guardrail(c, margins)]
    if p["significant"] and p["diff"] > 0:
        kind = "wins" if lo > threshold else "below_practical_threshold"
    elif p["significant"] and p["diff"] < 0 and hi < -threshold:
        kind = "worse"
    else:
        kind = "not_significant"
    return {"primary": p, "kind": kind, "failing": failing}


def _winner(
    comparisons: list[dict[str, Any]],
    status: Mapping[str, dict[str, Any]],
    control: str,
    primary: str,
    threshold: float,
) -> Decision | None:
    """The treatment whose primary-metric CI lies above the practical threshold, with no failing
    guardrail (several: the largest primary-metric lower bound)."""
    ok = [t for t, s in status.items() if s["kind"] == "wins" and not s["failing"]]
    if not ok:
        return None
    ok.sort(key=lambda t: (status[t]["primary"]["ci_low"], status[t]["primary"]["diff"]))
    t = ok[-1]
    c = status[t]["primary"]
    guards = [x["metric"] for x in comparisons if x["treatment"] == t and x["metric"] != primary]
    others = ok[:-1][::-1]
    note = f"; also better than {control}: {', '.join(others)}" if others else ""
    rel = _rel_text(c)
    guard = f"guardrails ok ({', '.join(guards)})" if guards else "no guardrail metrics"
    return (
        t,
        "winner",
        f"winner: {t} beats {control} on {primary} by {c['diff']:+.4g} "
        f"(CI {c['ci_low']:.4g}..{c['ci_high']:.4g}, lower bound above the practical threshold "
        f"{threshold:g}; p_adj={c['p_adjusted']:.2g}{rel}); {guard}{note}",
    )


def _rel_text(c: dict[str, Any]) -> str:
    rel, lo, hi = c.get("relative_lift"), c.get("rel_ci_low"), c.get("rel_ci_high")
    if rel is None or not all(v is not None and math.isfinite(v) for v in (rel, lo, hi)):
        return ""
    return f"; relative lift {rel:+.1%} (CI {lo:+.1%}..{hi:+.1%})"


def _no_winner(
    status: Mapping[str, dict[str, Any]], control: str, primary: str, threshold: float
) -> Decision:
    """The decision when no treatment qualifies: the control wins when every treatment is
    worse on the primary metric; otherwise no winner yet, for the most telling reason."""
    kinds = {t: s["kind"] for t, s in status.items()}
    if all(k == "worse" for k in kinds.values()):
        return (
            control,
            "control_better",
            f"winner: control {control}; every treatment is significantly worse on {primary} "
            f"(CI upper bound below −{threshold:g})",
        )
    blocked = {t: s["failing"] for t, s in status.items() if s["kind"] == "wins" and s["failing"]}
    if blocked:
        detail = "; ".join(
            f"{t}: " + ", ".join(f"{c['metric']} CI low {_nan(c['ci_low']):+.4g}" for c in fails)
            for t, fails in blocked.items()
        )
        return (
            None,
            "guardrail",
            f"no winner yet: {', '.join(blocked)} beat{'s' if len(blocked) == 1 else ''} "
            f"{control} on {primary} but fail{'s' if len(blocked) == 1 else ''} a guardrail "
            f"(significantly worse, or worse than its non-inferiority margin allows: {detail})",
        )
    if "below_practical_threshold" in kinds.values():
        return (
            None,
            "below_practical_threshold",
            f"no winner yet: the CI of the {primary} lift does not clear the practical threshold "
            f"({threshold:g}) for any significantly better treatment",
        )
    return (
        None,
        "not_significant",
        f"no winner yet: no treatment is significantly better than {control} on {primary}",
    )


# ---------------------------------------------------------------------------------------------
# decisions → events, time course, flat metrics


def events_from_decisions(decisions: pd.DataFrame, experiment: str | None = None) -> pd.DataFrame:
    """Turn exported decisions into EVENTS for :func:`analyze`.

    Keeps the decisions of ``experiment`` (default: the only A/B test present) that have an
    ab_group: ``learner_id`` (= learner_hash), ``group`` (= ab_group), ``timestamp``,
    ``accuracy`` (next_accuracy), ``engagement`` (next_engagement), ``success``
    (session_completed as 0/1), ``decisions`` (1 per row: the denominator of per-decision ratio
    metrics such as ``engagement_per_decision: [engagement, decisions]``), ``session_minutes``
    (total_session_time_ms / 60000, when present), plus ``decision_id`` when present. Adds
    per-learner CUPED covariates ``pre_accuracy``, ``pre_engagement``, ``pre_success``: the
    learner's mean over decisions outside any A/B test before the experiment's first
    timestamp (NaN when none).
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
    events["decisions"] = 1.0
    if "total_session_time_ms" in d.columns:
        minutes = _numeric(d.loc[sel, "total_session_time_ms"], "total_session_time_ms") / 60000
        events["session_minutes"] = minutes
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
        "srm_checked": int(results["srm"].get("checked", True)),
        "srm_p_value": results["srm"]["p_value"],
        "srm_mismatch": int(results["srm"]["mismatch"]),
        "has_winner": int(results["winner"] is not None),
    }
    for g, info in results["groups"].items():
        out[f"n_learners_{g}"] = info["n_learners"]
    for c in results["comparisons"]:
        key = f"{c['metric']}_{c['treatment']}"
        for name in ("diff", "ci_low", "ci_high", "p_value", "p_adjusted", "relative_lift"):
            out[f"{key}_{name}"] = c.get(name)
        out[f"{key}_significant"] = int(c["significant"])
    return {k: v for k, v in out.items() if v is not None}
