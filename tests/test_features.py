"""Feature validation, extraction and standardization statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnops.contracts import FEATURES
from learnops.errors import LearnopsError
from learnops.mlp.features import FeatureStats, check_features, feature_matrix, feature_vector


def _frame(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    df["consecutive_errors"] = rng.integers(0, 5, n)
    return df


def test_feature_matrix_uses_fixed_order_and_ignores_extras():
    df = _frame()
    shuffled = df[list(reversed(FEATURES))].assign(extra="x", action="continue")
    X = feature_matrix(shuffled)
    assert X.shape == (20, 18)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, df[list(FEATURES)].to_numpy(dtype=float))


def test_missing_columns_are_all_listed():
    df = _frame().drop(columns=["engagement", "ability"])
    with pytest.raises(LearnopsError, match="missing feature column\\(s\\): engagement, ability"):
        check_features(df)


def test_non_numeric_and_nan_columns_are_errors():
    df = _frame()
    df["hint_rate"] = "lots"
    with pytest.raises(LearnopsError, match="non-numeric feature column\\(s\\): hint_rate"):
        feature_matrix(df)
    df = _frame()
    df.loc[[1, 4], "session_minutes"] = np.nan
    df.loc[2, "ability"] = np.inf
    with pytest.raises(LearnopsError, match=r"session_minutes \(2 rows\), ability \(1 row\)"):
        feature_matrix(df)


def test_bool_and_nullable_ints_are_numeric():
    df = _frame()
    df["consecutive_errors"] = df["consecutive_errors"].astype("Int64")
    df["hour_of_day"] = df["hour_of_day"] > 0
    X = feature_matrix(df)
    assert set(np.unique(X[:, FEATURES.index("hour_of_day")])) <= {0.0, 1.0}


def test_feature_vector_validation():
    row = _frame(1).iloc[0].to_dict()
    assert feature_vector({**row, "extra": "ignored"}).shape == (18,)
    with pytest.raises(LearnopsError, match="missing feature\\(s\\): hint_rate"):
        feature_vector({k: v for k, v in row.items() if k != "hint_rate"})
    with pytest.raises(LearnopsError, match="engagement is not numeric"):
        feature_vector({**row, "engagement": "high"})
    with pytest.raises(LearnopsError, match="ability is missing or not finite"):
        feature_vector({**row, "ability": None})


def test_stats_standardize_clip_and_roundtrip():
    X = feature_matrix(_frame(500))
    X[:, 3] = 7.0  # constant feature
    stats = FeatureStats.fit(X, clip=3.0)
    Z = stats.transform(X)
    assert Z.dtype == np.float32
    assert np.all(np.abs(Z) <= 3.0)
    assert stats.std[3] == 1.0 and np.all(Z[:, 3] == 0)
    np.testing.assert_allclose(Z[:, 0].mean(), 0.0, atol=1e-2)
    outlier = X[:1].copy()
    outlier[0, 0] = 1e6
    assert stats.transform(outlier)[0, 0] == 3.0
    again = FeatureStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.transform(X), Z)
    with pytest.raises(LearnopsError, match="does not match"):
        FeatureStats.from_dict({**stats.to_dict(), "names": ["a"] * 18})
