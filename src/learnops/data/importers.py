"""Load external data into the event store: CSV/Parquet tables and mongoexport JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from learnops.data.schemas import validate_decisions, validate_responses
from learnops.data.store import EventStore
from learnops.errors import LearnopsError
from learnops.hashing import is_learner_hash, learner_hash
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


def _hash_ids(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "learner_hash" not in df.columns:
        if "learner_id" not in df.columns:
            raise LearnopsError("table needs a learner_id or learner_hash column")
        df["learner_hash"] = [
            s if is_learner_hash(s) else learner_hash(s) for s in df["learner_id"].astype(str)
        ]
    return df


def import_table(store: EventStore, path: str | Path, kind: str) -> int:
    """Import a CSV/Parquet table of ``kind`` 'responses' or 'decisions'; all rows or none."""
    df = _hash_ids(read_table(path))
    if "timestamp" in df.columns:
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    if kind == "responses":
        if "response_id" not in df.columns:
            raise LearnopsError(f"{path}: missing column response_id")
        df = validate_responses(df.assign(module=df.get("module")))
        return store.insert_responses(df)
    if kind == "decisions":
        return store.insert_decisions(validate_decisions(df))
    raise LearnopsError(f"unknown table kind {kind!r}: use responses or decisions")


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
    df["learner_hash"] = [learner_hash(str(x)) for x in df.pop("learner")]
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
