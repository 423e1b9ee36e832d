"""Pseudonymous learner ids: HMAC-SHA256 with a secret salt, and stable hash buckets."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import warnings
from collections.abc import Mapping

from learnops.errors import LearnopsError

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


#: The message whose HMAC identifies a salt without revealing it (see :func:`salt_fingerprint`).
SALT_CHECK_MESSAGE = b"learnops-salt-check"


def salt_fingerprint(key: bytes | None = None) -> str:
    """The first 16 hex of HMAC-SHA256(salt, "learnops-salt-check"): names the salt (so that a
    file of pre-hashed ids can say which salt made them) without revealing it."""
    return hmac.new(key or salt(), SALT_CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]


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
    """``sha256:`` over the content of DataFrames: row count, column names and values in order,
    independent of the index, of memory layout and of the integer/float/bool width of numeric
    columns (numbers are hashed as float64, with one NaN pattern and no -0.0; datetimes as UTC
    nanoseconds; anything else as text). The fingerprint of training data in model metadata and
    in the registry."""
    import numpy as np
    import pandas as pd

    h = hashlib.sha256(b"learnops.data/2\n")
    for df in tables:
        h.update(f"table rows={len(df)} cols={df.shape[1]}\n".encode())
        for col in df.columns:
            s = df[col]
            h.update(str(col).encode() + b"\0")
            if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s):
                ts = pd.to_datetime(s, utc=True)
                v = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
                h.update(b"t" + np.ascontiguousarray(v, dtype="<i8").tobytes())
            elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                v = s.to_numpy(dtype=np.float64, na_value=np.nan)
                v = np.where(np.isnan(v), np.nan, v) + 0.0
                h.update(b"f" + np.ascontiguousarray(v, dtype="<f8").tobytes())
            else:
                text = "\x1f".join(s.astype("string").fillna("\x00").tolist())
                h.update(b"s" + text.encode())
            h.update(b"\n")
    return "sha256:" + h.hexdigest()


def _normalized(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    if not weights:
        raise LearnopsError("an A/B test needs at least one group")
    items = sorted((str(g), float(w)) for g, w in weights.items())
    if any(not math.isfinite(w) or w < 0 for _, w in items):
        raise LearnopsError(f"group weights must be finite and >= 0, got {dict(weights)}")
    total = sum(w for _, w in items)
    if total <= 0:
        raise LearnopsError(f"group weights must sum to > 0, got {dict(weights)}")
    return [(g, w / total) for g, w in items]


def assign_group(experiment: str, learner_hash: str, weights: Mapping[str, float]) -> str:
    """The learner's group: depends only on (experiment, learner_hash) and the weights.

    Groups are laid out in sorted-name order on [0, 1) with widths proportional to their
    weights, so the dict order of ``weights`` does not matter and adding learners never moves
    existing ones.
    """
    u = bucket(experiment, learner_hash)
    edge = 0.0
    items = _normalized(weights)
    for g, w in items:
        edge += w
        if u < edge:
            return g
    return next(g for g, w in reversed(items) if w > 0)  # float round-off at the top edge
