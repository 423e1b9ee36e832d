import hashlib
import hmac

import numpy as np
import pytest

from learnops.data.hashing import DEMO_SALT, bucket, is_learner_hash, learner_hash


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
