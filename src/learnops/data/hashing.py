"""Pseudonymous learner ids: HMAC-SHA256 with a secret salt, and stable hash buckets."""

from __future__ import annotations

import hashlib
import hmac
import os
import warnings

#: The documented demo salt. Set LEARNOPS_SALT in any deployment that stores real learners.
DEMO_SALT = "learnops-demo-salt-change-me"


def salt() -> bytes:
    """The secret salt from env ``LEARNOPS_SALT`` (the demo salt when unset)."""
    return os.environ.get("LEARNOPS_SALT", DEMO_SALT).encode("utf-8")


def learner_hash(learner_id: str, key: bytes | None = None) -> str:
    """HMAC-SHA256(salt, learner_id) as 64 hex characters: how learner ids are stored."""
    if learner_id is None or str(learner_id) == "":
        raise ValueError("learner id must be a non-empty string")
    return hmac.new(key or salt(), str(learner_id).encode("utf-8"), hashlib.sha256).hexdigest()


def is_learner_hash(value: str) -> bool:
    """True when ``value`` looks like a learner hash (64 lowercase hex characters)."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def warn_if_demo_salt() -> None:
    """Warn once when real data may be hashed with the public demo salt."""
    if "LEARNOPS_SALT" not in os.environ:
        warnings.warn(
            "LEARNOPS_SALT is not set: learner ids are hashed with the public demo salt",
            stacklevel=2,
        )


def bucket(namespace: str, key: str) -> float:
    """A stable uniform number in [0, 1) from sha256(namespace, key): experiment assignment."""
    digest = hashlib.sha256(f"{namespace}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def data_fingerprint(*tables) -> str:
    """``sha256:`` over the content of DataFrames (column names and values, not file bytes)."""
    import pandas as pd

    h = hashlib.sha256()
    for df in tables:
        h.update(",".join(map(str, df.columns)).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()
