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
