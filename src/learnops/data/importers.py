"""Load external data into the event store: CSV/Parquet tables and mongoexport JSON lines."""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learnops.data.schemas import (
    DECISION_SCHEMA,
    RESPONSE_SCHEMA,
    validate_decisions,
    validate_responses,
)
from learnops.data.store import Decision, EventStore, Response
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


_SCHEMAS = {"responses": RESPONSE_SCHEMA, "decisions": DECISION_SCHEMA}
_ID_COLUMN = {"responses": "response_id", "decisions": "decision_id"}


def required_columns(kind: str) -> list[str]:
    """The columns a ``kind`` table must have, besides its learner column (``learner_id``, or
    ``learner_hash`` with --hashed-with)."""
    schema = _SCHEMAS[kind]
    made = ("learner_hash", "timestamp", _ID_COLUMN[kind])  # made on import when absent
    return [n for n, c in schema.columns.items() if not c.nullable and n not in made]


def optional_columns(kind: str) -> list[str]:
    """The columns a ``kind`` table may have (absent or empty cells are stored as null)."""
    extra = ["module", "response_time_ms"] if kind == "responses" else []
    schema = _SCHEMAS[kind]
    made = [_ID_COLUMN[kind], "timestamp"]  # absent: made from the natural key / import time
    return made + [n for n, c in schema.columns.items() if c.nullable and n not in extra] + extra


def check_columns(df: pd.DataFrame, kind: str, what: str) -> None:
    """LearnopsError naming every missing required column, and all the required ones."""
    required = required_columns(kind)
    missing = [c for c in required if c not in df.columns]
    if missing:
        needs = (
            f"; a {kind} table needs learner_id (or learner_hash), {', '.join(required)}"
            if len(missing) <= 5
            else f" (of the {len(required)} required, besides learner_id or learner_hash)"
        )
        raise LearnopsError(f"{what}: missing column(s) {', '.join(missing)}{needs}")


def check_csv_fields(path: str | Path, limit: int = 5) -> None:
    """LearnopsError naming the lines of a CSV file that have more fields than its header (an
    unquoted comma in a value: pandas would shift the columns and blame the wrong one)."""
    p = Path(path)
    name = p.name.lower()
    if not (name.endswith((".csv", ".txt", ".csv.gz")) and p.is_file()):
        return
    opener = gzip.open if name.endswith(".gz") else open
    bad: list[str] = []
    with opener(p, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if len(row) > len(header):
                bad.append(f"line {reader.line_num} has {len(row)}")
                if len(bad) > limit:
                    break
    if bad:
        shown = "; ".join(bad[:limit]) + ("; …" if len(bad) > limit else "")
        raise LearnopsError(
            f"{p}: too many fields: {shown} (the header has {len(header)}); quote values that "
            "contain commas"
        )


@dataclass(frozen=True)
class ImportResult:
    """What an import did: ``inserted`` new rows; ``skipped`` rows whose id was already stored;
    ``notes`` what was assumed (e.g. timestamps assigned); ``dry_run``: nothing was written
    (``inserted`` is then what would have been)."""

    kind: str
    inserted: int
    skipped: int
    notes: tuple[str, ...] = ()
    dry_run: bool = False

    def message(self, store: EventStore) -> str:
        if self.dry_run:
            text = f"dry run: {self.inserted} valid new rows would be imported into {store!r}"
        else:
            text = f"imported {self.inserted} rows into {store!r}"
        if self.skipped:
            text += (
                f"; skipped {self.skipped} row(s) already in the store "
                f"(same {_ID_COLUMN[self.kind]})"
            )
        if self.dry_run:
            text += "; nothing was written"
        return text


def _stored_ids(store: EventStore, kind: str, ids: list[str]) -> set[str]:
    from sqlalchemy import select

    model = Response if kind == "responses" else Decision
    col = model.__table__.c[_ID_COLUMN[kind]]
    found: set[str] = set()
    with store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            found.update(conn.execute(select(col).where(col.in_(ids[i : i + 500]))).scalars())
    return found


def insert_new(
    store: EventStore,
    df: pd.DataFrame,
    kind: str,
    notes: tuple[str, ...] = (),
    dry_run: bool = False,
) -> ImportResult:
    """Insert the validated rows whose id is not stored yet (all of them or none, in one
    transaction): importing the same file twice adds nothing the second time. ``dry_run``:
    count them, write nothing."""
    from sqlalchemy.exc import IntegrityError

    ids = df[_ID_COLUMN[kind]].astype(str)
    stored = _stored_ids(store, kind, ids.tolist())
    new = df[~ids.isin(stored).to_numpy()] if stored else df
    if dry_run:
        return ImportResult(kind, len(new), len(df) - len(new), notes, dry_run=True)
    insert = store.insert_responses if kind == "responses" else store.insert_decisions
    try:
        n = insert(new)
    except IntegrityError:
        raise LearnopsError(
            f"{kind}: another writer stored some of these {_ID_COLUMN[kind]}s meanwhile; "
            "nothing was imported: run the import again"
        ) from None
    return ImportResult(kind, n, len(df) - len(new), notes)


def read_import_table(
    path: str | Path,
    kind: str,
    hashed_with: str | None = None,
    mapping: str | dict[str, str] | None = None,
    timestamp_format: str | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """A CSV/Parquet table of ``kind`` 'responses' or 'decisions': columns renamed by
    ``mapping`` (``ours=theirs,…``), learner ids hashed, timestamps parsed (``timestamp_format``)
    or assigned, ids made from the natural key when the file has none, every row validated
    against the contract. Bad rows raise one LearnopsError listing them by line number (see
    :func:`learnops.data.rows.row_errors`); what was assumed is appended to ``notes``."""
    from learnops.data import rows

    if kind not in ("responses", "decisions"):
        raise LearnopsError(f"unknown table kind {kind!r}: use responses or decisions")
    what = str(path)
    pairs = rows.parse_mapping(mapping, kind) if isinstance(mapping, str) else dict(mapping or {})
    check_csv_fields(path)
    text_columns = {theirs for ours, theirs in pairs.items() if ours in rows.TEXT_COLUMNS}
    raw = read_table(path, text_columns=text_columns | set(rows.TEXT_COLUMNS))
    df = rows.apply_mapping(raw, pairs, what)
    lines = rows.line_numbers(path, len(df))
    errors: list[rows.RowError] = []
    df, errs = rows.learner_hashes(df, hashed_with, what, _hash_ids)
    errors += errs
    assigned = {c: "" for c in ("timestamp", _ID_COLUMN[kind]) if c not in df.columns}
    check_columns(df.assign(**assigned), kind, what)  # these two are made when absent
    given = df["timestamp"].astype("string") if "timestamp" in df.columns else None
    df, errs, ts_note = rows.timestamps(df, timestamp_format)
    errors += errs
    if ts_note and notes is not None:
        notes.append(ts_note)
    df, id_note = rows.natural_ids(df, kind, _ID_COLUMN[kind], given)
    if id_note and notes is not None:
        notes.append(id_note)
    if kind == "responses":
        df = df.assign(module=df.get("module"))
    schema = _SCHEMAS[kind]
    df, errs = rows.coerce_numbers(df, schema)
    errors += errs
    errors += rows.row_errors(df, schema, skip={(p, c) for p, c, _ in errors})
    if errors:
        raise rows.bad_rows_error(what, errors, lines, len(df))
    return validate_responses(df) if kind == "responses" else validate_decisions(df)


def import_file(
    store: EventStore,
    path: str | Path,
    kind: str,
    hashed_with: str | None = None,
    mapping: str | dict[str, str] | None = None,
    timestamp_format: str | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import a table (``kind`` responses | decisions) or a mongoexport dump (``mongo``): all
    new rows or none; rows whose id is already stored are skipped and counted. ``mapping``
    renames the file's columns (``ours=theirs,…``); ``dry_run`` validates and counts, writes
    nothing."""
    if kind == "mongo":
        if hashed_with is not None:
            raise LearnopsError("--hashed-with is for tables with a learner_hash column")
        if mapping or timestamp_format:
            raise LearnopsError("--map and --timestamp-format are for CSV/Parquet tables")
        df = validate_responses(read_mongo_jsonl(path))
        return insert_new(store, df, "responses", dry_run=dry_run)
    notes: list[str] = []
    df = read_import_table(path, kind, hashed_with, mapping, timestamp_format, notes)
    return insert_new(store, df, kind, tuple(notes), dry_run=dry_run)


def import_table(
    store: EventStore, path: str | Path, kind: str, hashed_with: str | None = None
) -> int:
    """Import a CSV/Parquet table of ``kind`` 'responses' or 'decisions'; all rows or none.
    Returns the number of rows inserted: rows whose id is already stored are skipped, so
    importing the same file again inserts nothing.

    Learner ids come as ``learner_id`` (raw, hashed here with the store's salt) or as
    ``learner_hash`` together with ``hashed_with``, the :func:`~learnops.hashing.salt_fingerprint`
    of the salt that made them, which must be this store's. Required columns:
    :func:`required_columns`.
    """
    return import_file(store, path, kind, hashed_with).inserted


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
    """Import a mongoexport dump of TrainingData; all new rows or none (ids already stored are
    skipped). Returns the number of rows inserted."""
    return import_file(store, path, "mongo").inserted
