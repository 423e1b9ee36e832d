"""Load external data into the event store: CSV/Parquet tables and mongoexport JSON lines."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learnops.data.schemas import validate_decisions, validate_responses
from learnops.data.store import EventStore
from learnops.errors import LearnopsError
from learnops.hashing import is_learner_hash, learner_hash, salt_fingerprint
from learnops.io import read_table

# field names used by the seed's TrainingData documents → our response columns
_MONGO_FIELDS = {
    "learner": ("userId", "user_id", "learnerId", "learner_id", "studentId"),
    "item_id": ("questionId", "question_id", "itemId", "item_id", "quizQuestionId"),
    "module": ("moduleId", "module_id", "module", "topic"),
    "correct": ("isCorrect", "is_correct", "correct"),
    "response_time_ms": ("responseTime", "response_time_ms", "responseTimeMs", "timeSpent"),
    "timestamp": ("timestamp", "createdAt", "created_at", "answeredAt"),
    "response_id": ("_id", "id", "response_id"),
}


_CONTROL = r"[\x00-\x1f\x7f]"
HASHED_WITH_HINT = (
    "`learnops store salt-fingerprint` prints this store's fingerprint; see README, Your own data"
)


def _rows(mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """1-based data row numbers of ``mask`` (values are not shown: they may be personal ids)."""
    pos = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(map(str, pos[:limit])) + (", …" if len(pos) > limit else "")
    return f"{len(pos)} row(s) (data row {shown})"


def check_raw_ids(values: pd.Series, what: str) -> pd.Series:
    """Raw learner ids as strings; LearnopsError on missing or blank ids or control characters
    (the message names rows, never the ids)."""
    missing = values.isna().to_numpy()
    text = values.astype(str)
    blank = ~missing & (text.str.strip().str.len() == 0).to_numpy()
    control = ~missing & text.str.contains(_CONTROL, regex=True).to_numpy()
    for mask, label in ((missing, "missing"), (blank, "blank"), (control, "with control chars")):
        if mask.any():
            raise LearnopsError(f"{what}: learner_id {label} in {_rows(mask)}")
    return text


def _hash_ids(
    df: pd.DataFrame, hashed_with: str | None = None, what: str = "table"
) -> pd.DataFrame:
    """``learner_hash`` for every row: raw ``learner_id`` values are always hashed with the
    store's salt; a ``learner_hash`` column is taken only when ``hashed_with`` (the salt
    fingerprint it was made with) matches this store's and every value is 64 lowercase hex."""
    has_id, has_hash = "learner_id" in df.columns, "learner_hash" in df.columns
    if has_id and has_hash:
        raise LearnopsError(
            f"{what}: both learner_id and learner_hash columns: keep one (learner_id is hashed "
            "on import; learner_hash must be pre-hashed with this store's salt)"
        )
    if not has_id and not has_hash:
        raise LearnopsError(
            f"{what}: needs a learner_id column (raw ids, hashed on import) or a learner_hash "
            "column (pre-hashed, with --hashed-with)"
        )
    df = df.copy()
    if has_id:
        if hashed_with is not None:
            raise LearnopsError(
                f"{what}: --hashed-with is for a learner_hash column; this table has raw "
                "learner_id values (they are hashed on import)"
            )
        ids = check_raw_ids(df.pop("learner_id"), what)
        if len(ids) and all(is_learner_hash(v) for v in ids.head(100)):
            warnings.warn(
                f"{what}: learner_id values look like hashes; they are hashed again. If they "
                "are HMACs with this store's salt, name the column learner_hash and pass "
                "--hashed-with",
                UserWarning,
                stacklevel=3,
            )
        df["learner_hash"] = [learner_hash(v) for v in ids]
        return df
    if hashed_with is None:
        raise LearnopsError(
            f"{what}: a learner_hash column is accepted only with --hashed-with FINGERPRINT, "
            f"the salt fingerprint the ids were hashed with ({HASHED_WITH_HINT})"
        )
    if hashed_with.strip().lower() != salt_fingerprint():
        raise LearnopsError(
            f"{what}: --hashed-with {hashed_with.strip()[:32]!r} is not this store's salt "
            "fingerprint: the ids were hashed with another salt (check LEARNOPS_SALT; "
            f"{HASHED_WITH_HINT})"
        )
    values = df["learner_hash"]
    bad = values.isna().to_numpy() | ~np.array(
        [isinstance(v, str) and is_learner_hash(v) for v in values], dtype=bool
    )
    if bad.any():
        raise LearnopsError(
            f"{what}: learner_hash must be HMAC-SHA256 digests (64 lowercase hex characters); "
            f"{_rows(bad)} are not"
        )
    return df


def import_table(
    store: EventStore, path: str | Path, kind: str, hashed_with: str | None = None
) -> int:
    """Import a CSV/Parquet table of ``kind`` 'responses' or 'decisions'; all rows or none.

    Learner ids come as ``learner_id`` (raw, hashed here with the store's salt) or as
    ``learner_hash`` together with ``hashed_with``, the :func:`~learnops.hashing.salt_fingerprint`
    of the salt that made them, which must be this store's.
    """
    if kind not in ("responses", "decisions"):
        raise LearnopsError(f"unknown table kind {kind!r}: use responses or decisions")
    df = _hash_ids(read_table(path), hashed_with, str(path))
    if "timestamp" in df.columns:
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    if kind == "responses":
        if "response_id" not in df.columns:
            raise LearnopsError(f"{path}: missing column response_id")
        df = validate_responses(df.assign(module=df.get("module")))
        return store.insert_responses(df)
    return store.insert_decisions(validate_decisions(df))


def _unwrap(value: Any) -> Any:
    """Extended-JSON wrappers ($oid, $date, $numberInt, …) → plain values."""
    if isinstance(value, dict):
        if "$oid" in value:
            return value["$oid"]
        if "$date" in value:
            inner = _unwrap(value["$date"])
            if isinstance(inner, (int, float)):
                return pd.Timestamp(inner, unit="ms", tz="UTC")
            return (
                pd.Timestamp(inner).tz_convert("UTC")
                if pd.Timestamp(inner).tzinfo
                else pd.Timestamp(inner, tz="UTC")
            )
        for key in ("$numberInt", "$numberLong", "$numberDouble", "$numberDecimal"):
            if key in value:
                return float(value[key]) if key != "$numberInt" else int(value[key])
    return value


def _pick(doc: dict, names: tuple[str, ...]) -> Any:
    for n in names:
        if n in doc:
            return _unwrap(doc[n])
    return None


def read_mongo_jsonl(path: str | Path) -> pd.DataFrame:
    """Parse a ``mongoexport`` JSON-lines dump of the seed's TrainingData into response rows."""
    rows, errors = [], []
    p = Path(path)
    if not p.is_file():
        raise LearnopsError(f"input file not found: {p}")
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {lineno}: invalid JSON ({exc.msg})")
                continue
            row = {k: _pick(doc, names) for k, names in _MONGO_FIELDS.items()}
            missing = [k for k in ("learner", "item_id", "correct", "timestamp") if row[k] is None]
            if missing:
                errors.append(f"line {lineno}: missing {', '.join(missing)}")
                continue
            rows.append(row)
    if errors:
        shown = "; ".join(errors[:5]) + (f"; … {len(errors) - 5} more" if len(errors) > 5 else "")
        raise LearnopsError(f"{p}: {len(errors)} malformed line(s), nothing imported: {shown}")
    if not rows:
        raise LearnopsError(f"{p}: no documents")
    df = pd.DataFrame(rows)
    learners = check_raw_ids(df.pop("learner").map(lambda v: v if v is None else str(v)), str(p))
    df["learner_hash"] = [learner_hash(x) for x in learners]
    df["correct"] = df["correct"].map(lambda v: int(bool(v)) if isinstance(v, bool) else v)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["item_id"] = df["item_id"].astype(str)
    if df["response_id"].isna().any():
        df["response_id"] = [f"mongo-{i}" for i in range(len(df))]
    df["response_id"] = df["response_id"].astype(str)
    return df


def import_mongo_jsonl(store: EventStore, path: str | Path) -> int:
    """Import a mongoexport dump of TrainingData; all rows or none."""
    return store.insert_responses(validate_responses(read_mongo_jsonl(path)))
