"""Data tests: the pandera contracts accept the simulator's tables and reject malformed rows."""

import numpy as np
import pytest

from learnops.data.schemas import validate_decisions, validate_responses
from learnops.errors import LearnopsError


@pytest.mark.parametrize(
    "column, value, check",
    [
        ("correct", 2, "isin"),
        ("item_id", "", "str_length"),
        ("response_time_ms", -5.0, "greater_than_or_equal_to"),
    ],
)
def test_malformed_responses_are_rejected(small_sim, column, value, check):
    bad = small_sim.responses.copy()
    bad.loc[bad.index[0], column] = value
    with pytest.raises(LearnopsError, match=f"{column}: {check}"):
        validate_responses(bad)


@pytest.mark.parametrize(
    "column, value",
    [
        ("action", "dance"),
        ("decided_by", "oracle"),
        ("engagement", 1.5),
        ("propensity", 0.0),
        ("hour_of_day", 24.0),
        ("recent_accuracy", np.nan),
    ],
)
def test_malformed_decisions_are_rejected(small_sim, column, value):
    bad = small_sim.decisions.copy()
    bad.loc[bad.index[1], column] = value
    with pytest.raises(LearnopsError, match=column):
        validate_decisions(bad)


def test_duplicate_ids_and_missing_columns_are_rejected(small_sim):
    dup = small_sim.responses.iloc[[0, 0, 1]]
    with pytest.raises(LearnopsError, match="response_id"):
        validate_responses(dup)
    with pytest.raises(LearnopsError, match="column_in_dataframe"):
        validate_responses(small_sim.responses.drop(columns=["correct"]))


def test_extra_columns_are_dropped_and_order_is_the_contract(small_sim):
    df = small_sim.responses.assign(extra=1).iloc[:, ::-1]
    out = validate_responses(df)
    assert "extra" not in out.columns
    assert list(out.columns)[:3] == ["response_id", "learner_hash", "item_id"]


# --- issue 22: empty tables (14), absent A/B columns (8), blank / control characters (13) ---


def test_empty_object_tables_validate_with_the_contract_dtypes():
    import pandas as pd

    from learnops.contracts import DECISION_COLUMNS, RESPONSE_COLUMNS

    d = validate_decisions(pd.DataFrame({c: pd.Series([], dtype=object) for c in DECISION_COLUMNS}))
    r = validate_responses(pd.DataFrame({c: pd.Series([], dtype=object) for c in RESPONSE_COLUMNS}))
    assert d.empty and r.empty
    assert str(r["timestamp"].dtype) == "datetime64[ns, UTC]" and r["correct"].dtype == "int64"


def test_absent_optional_columns_are_added_as_null(small_sim):
    out = validate_decisions(
        small_sim.decisions.drop(columns=["ab_test", "ab_group", "confidence"])
    )
    assert out["ab_group"].isna().all() and out["confidence"].isna().all()


@pytest.mark.parametrize("value", [" ", "a\x00b", "x\ny", "\x7f"])
def test_blank_and_control_characters_are_rejected(small_sim, value):
    bad = small_sim.decisions.copy()
    bad.loc[bad.index[0], "ab_group"] = value
    with pytest.raises(LearnopsError, match="ab_group: non-blank text") as exc:
        validate_decisions(bad)
    assert "\n" not in str(exc.value) and "\x00" not in str(exc.value)


def test_logging_distribution_and_propensity_are_checked(small_sim):
    """The five p_<action> sum to 1 (or are all missing), lie in [0, 1], and the propensity is
    the distribution's probability of the logged action."""
    d = small_sim.decisions.head(50).copy()
    assert len(validate_decisions(d)) == 50
    bad_sum = d.copy()
    bad_sum.loc[bad_sum.index[:3], "p_continue"] += 0.1
    with pytest.raises(LearnopsError, match="sums to 1"):
        validate_decisions(bad_sum)
    partial = d.copy()
    partial.loc[partial.index[0], "p_take_break"] = np.nan
    with pytest.raises(LearnopsError, match="sums to 1"):
        validate_decisions(partial)
    mismatch = d.copy()
    mismatch.loc[mismatch.index[:2], "propensity"] = 0.999
    with pytest.raises(LearnopsError, match="propensity equals"):
        validate_decisions(mismatch)
    zero = d.copy()
    zero.loc[zero.index[0], "propensity"] = 0.0
    with pytest.raises(LearnopsError, match="propensity"):
        validate_decisions(zero)
    none = d.copy()  # older logs without a distribution still validate
    none[[c for c in d.columns if c.startswith("p_")]] = np.nan
    none["explored"] = None
    assert len(validate_decisions(none)) == 50
