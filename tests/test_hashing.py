import hashlib
import hmac

import numpy as np
import pytest

from learnops.hashing import DEMO_SALT, bucket, is_learner_hash, learner_hash


def test_learner_hash_is_hmac_sha256_of_the_salt(monkeypatch):
    monkeypatch.delenv("LEARNOPS_SALT", raising=False)
    expected = hmac.new(DEMO_SALT.encode(), b"alice", hashlib.sha256).hexdigest()
    assert learner_hash("alice") == expected
    assert is_learner_hash(expected)
    monkeypatch.setenv("LEARNOPS_SALT", "another-secret")
    assert learner_hash("alice") != expected  # the salt matters
    assert learner_hash("alice") == learner_hash("alice")


def test_empty_id_is_rejected():
    with pytest.raises(ValueError):
        learner_hash("")


def test_bucket_is_uniform_and_stable():
    u = np.array([bucket("exp", str(i)) for i in range(20000)])
    assert u.min() >= 0 and u.max() < 1
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    # chi-square goodness of fit to uniform, df = 9: 99.9% quantile is 27.9
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert chi2 < 27.9
    assert bucket("exp", "42") == bucket("exp", "42") != bucket("other", "42")


def test_data_fingerprint_is_content_based():
    import pandas as pd

    from learnops.hashing import data_fingerprint

    df = pd.DataFrame(
        {
            "learner_hash": ["a", "b", None],
            "x": np.array([1, 2, 3], dtype=np.int64),
            "y": [0.5, np.nan, -0.0],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", None], utc=True),
        }
    )
    fp = data_fingerprint(df)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    # same content: other index, other integer width, +0.0 for -0.0, copy
    same = df.set_index(pd.Index([10, 11, 12])).astype({"x": np.int32})
    same["y"] = [0.5, np.nan, 0.0]
    assert data_fingerprint(same) == fp == data_fingerprint(df.copy())
    # any change of a value, a column name, the column order or the row order changes it
    changed = df.copy()
    changed.loc[1, "x"] = 4
    assert data_fingerprint(changed) != fp
    assert data_fingerprint(df.rename(columns={"x": "z"})) != fp
    assert data_fingerprint(df[["x", "learner_hash", "y", "t"]]) != fp
    assert data_fingerprint(df.iloc[::-1]) != fp
    # several tables: order matters and the split between tables counts
    assert data_fingerprint(df, df.iloc[:1]) != data_fingerprint(df.iloc[:1], df)
    assert data_fingerprint(df.iloc[:2], df.iloc[2:]) != fp
