"""pandera schemas of the exported tables: the data contracts of learnops.contracts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from learnops.contracts import (
    ACTIONS,
    DECIDERS,
    DECISION_COLUMNS,
    FEATURES,
    LOGGING_PROB_COLUMNS,
    RESPONSE_COLUMNS,
)
from learnops.errors import LearnopsError

_UTC = pd.DatetimeTZDtype("ns", "UTC")
_unit = [pa.Check.in_range(0.0, 1.0)]
_nonneg = [pa.Check.ge(0.0)]
_CONTROL = r"[\x00-\x1f\x7f]"


def _clean_text(s: pd.Series) -> pd.Series:
    """Not blank (nor only whitespace) and without control characters (NUL, newline, …)."""
    text = s.astype(str)
    return (text.str.strip().str.len() > 0) & ~text.str.contains(_CONTROL, regex=True)


#: ids and labels: non-blank text without control characters (nulls are not checked here)
_text = pa.Check(_clean_text, name="non-blank text without control characters")

_feature_checks: dict[str, list[pa.Check]] = {
    "recent_accuracy": _unit,
    "accuracy_trend": [pa.Check.in_range(-1.0, 1.0)],
    "avg_response_time_s": _nonneg,
    "consecutive_errors": _nonneg,
    "consecutive_correct": _nonneg,
    "hint_rate": _unit,
    "session_minutes": _nonneg,
    "minutes_since_break": _nonneg,
    "items_in_session": _nonneg,
    "engagement": _unit,
    "hour_of_day": [pa.Check.in_range(0.0, 23.0)],
    "ability_se": _nonneg,
    "sessions_completed": _nonneg,
    "days_since_last_session": _nonneg,
}

DECISION_SCHEMA = pa.DataFrameSchema(
    {
        "decision_id": pa.Column(str, [_text], unique=True, coerce=True),
        "learner_hash": pa.Column(str, [pa.Check.str_length(1, 64), _text], coerce=True),
        "timestamp": pa.Column(_UTC, coerce=True),
        **{f: pa.Column(float, _feature_checks.get(f, []), coerce=True) for f in FEATURES},
        "action": pa.Column(str, pa.Check.isin(ACTIONS), coerce=True),
        "decided_by": pa.Column(str, pa.Check.isin(DECIDERS), coerce=True),
        "confidence": pa.Column(float, _unit, nullable=True, coerce=True),
        "propensity": pa.Column(
            float, [pa.Check.in_range(0.0, 1.0, include_min=False)], nullable=True, coerce=True
        ),
        **{c: pa.Column(float, _unit, nullable=True, coerce=True) for c in LOGGING_PROB_COLUMNS},
        "explored": pa.Column("boolean", nullable=True, coerce=True),
        "latency_ms": pa.Column(float, _nonneg, nullable=True, coerce=True),
        "model_version": pa.Column(str, [_text], nullable=True, coerce=True),
        "difficulty_delta": pa.Column(float, nullable=True, coerce=True),
        "ab_test": pa.Column(str, [_text], nullable=True, coerce=True),
        "ab_group": pa.Column(str, [_text], nullable=True, coerce=True),
        "next_accuracy": pa.Column(float, _unit, nullable=True, coerce=True),
        "next_engagement": pa.Column(float, _unit, nullable=True, coerce=True),
        "session_completed": pa.Column("boolean", nullable=True, coerce=True),
        "total_session_time_ms": pa.Column(float, _nonneg, nullable=True, coerce=True),
    },
    checks=[
        pa.Check(
            lambda df: _distribution_ok(df),
            name="logging distribution p_<action> sums to 1 (all given or none)",
        ),
        pa.Check(
            lambda df: _propensity_matches(df),
            name="propensity equals the logging distribution's p_<action>",
        ),
    ],
    strict="filter",
    ordered=False,
    name="decisions",
)


def _distribution_ok(df: pd.DataFrame) -> pd.Series:
    """Rows whose five p_<action> are all null, or all given and summing to 1 (±1e-6)."""
    p = df[list(LOGGING_PROB_COLUMNS)].astype(float)
    given = p.notna()
    total = p.sum(axis=1, min_count=1)
    return given.all(axis=1) & ((total - 1.0).abs() <= 1e-6) | ~given.any(axis=1)


def _propensity_matches(df: pd.DataFrame) -> pd.Series:
    """Where both are logged, the propensity is the distribution's probability of the action."""
    p = df[list(LOGGING_PROB_COLUMNS)].to_numpy(dtype=float)
    idx = df["action"].map({a: i for i, a in enumerate(ACTIONS)})
    ok = pd.Series(True, index=df.index)
    known = idx.notna().to_numpy() & df["propensity"].notna().to_numpy()
    if known.any():
        rows = np.flatnonzero(known)
        p_a = p[rows, idx.to_numpy()[rows].astype(int)]
        prop = df["propensity"].to_numpy(dtype=float)[rows]
        ok.iloc[rows] = np.isnan(p_a) | (np.abs(p_a - prop) <= 1e-6)
    return ok


RESPONSE_SCHEMA = pa.DataFrameSchema(
    {
        "response_id": pa.Column(str, [_text], unique=True, coerce=True),
        "learner_hash": pa.Column(str, [pa.Check.str_length(1, 64), _text], coerce=True),
        "item_id": pa.Column(str, [pa.Check.str_length(1, 128), _text], coerce=True),
        "module": pa.Column(str, [_text], nullable=True, coerce=True),
        "correct": pa.Column("int64", pa.Check.isin([0, 1]), coerce=True),
        "response_time_ms": pa.Column(float, _nonneg, nullable=True, coerce=True),
        "timestamp": pa.Column(_UTC, coerce=True),
    },
    strict="filter",
    ordered=False,
    name="responses",
)


def _show(value: object) -> str:
    """An example failure value for a one-line message (control characters escaped)."""
    text = str(value)
    if not text.isprintable() or not text.strip():
        text = repr(text)
    return text if len(text) <= 80 else text[:77] + "..."


def prepare(df: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """``df`` with the optional (nullable) columns it lacks added as all-null."""
    missing = {
        name: pd.Series(index=df.index, dtype=col.dtype.type)
        for name, col in schema.columns.items()
        if col.nullable and name not in df.columns
    }
    return df.assign(**missing) if missing else df


def validate(df: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Validate (and coerce) a table; raise one LearnopsError summarising every failure.

    Optional (nullable) columns that are absent are added as all-null, and empty or all-null
    text columns (``object``/float from a CSV or an empty read) are coerced to the string dtype,
    so an empty table, or a CSV without A/B columns, validates like the same rows in Parquet."""
    df = prepare(df, schema)
    try:
        out = schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        lines = []
        for (col, check), grp in cases.groupby(["column", "check"], dropna=False, sort=True):
            examples = ", ".join(map(_show, grp["failure_case"].head(3).tolist()))
            lines.append(f"{col}: {check} ({len(grp)} row(s), e.g. {examples})")
        raise LearnopsError(
            f"{schema.name}: {len(cases)} schema violation(s): " + "; ".join(lines)
        ) from None
    order = DECISION_COLUMNS if schema is DECISION_SCHEMA else RESPONSE_COLUMNS
    return out[[c for c in order if c in out.columns]]


def validate_decisions(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a decisions table against the contract."""
    return validate(df, DECISION_SCHEMA)


def validate_responses(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a responses table against the contract."""
    return validate(df, RESPONSE_SCHEMA)
