"""Row-level preparation of an imported table: column mapping, timestamps, ids from the natural
key, and the per-row validation report (line numbers and reasons) of ``learnops store import``."""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from learnops.contracts import DECISION_COLUMNS, RESPONSE_COLUMNS
from learnops.errors import LearnopsError

#: Bad rows listed in an import error (the rest are counted).
MAX_LISTED = 20
#: Columns read as text from a CSV (ids and labels: "007" stays "007").
TEXT_COLUMNS = (
    "learner_id", "learner_hash", "item_id", "response_id", "decision_id", "module",
    "model_version", "ab_test", "ab_group",
)  # fmt: skip
#: Prefix of the ids made from a row's natural key (files without response_id / decision_id).
IMPORT_ID_PREFIX = "imp-"
_LEARNER_COLUMNS = ("learner_id", "learner_hash")
_CONTROL = r"[\x00-\x1f\x7f]"


def known_columns(kind: str) -> list[str]:
    """Our column names a ``kind`` table may carry (the targets of ``--map``)."""
    cols = RESPONSE_COLUMNS if kind == "responses" else DECISION_COLUMNS
    return ["learner_id", *[c for c in cols if c != "learner_hash"], "learner_hash"]


def parse_mapping(text: str | None, kind: str) -> dict[str, str]:
    """``"ours=theirs,…"`` (``--map``) as ``{ours: theirs}``; LearnopsError on a malformed pair,
    an unknown target column or a column named twice."""
    if not text or not text.strip():
        return {}
    known = known_columns(kind)
    out: dict[str, str] = {}
    for part in text.split(","):
        ours, sep, theirs = (x.strip() for x in part.partition("="))
        if not sep or not ours or not theirs:
            raise LearnopsError(
                f"--map: expected ours=theirs pairs separated by commas, got {part.strip()!r}"
            )
        if ours not in known:
            raise LearnopsError(
                f"--map: {ours!r} is not a column of a {kind} table (one of {', '.join(known)})"
            )
        if ours in out:
            raise LearnopsError(f"--map: {ours} is mapped twice")
        if theirs in out.values():
            raise LearnopsError(f"--map: the file's column {theirs!r} is mapped twice")
        out[ours] = theirs
    return out


def apply_mapping(df: pd.DataFrame, mapping: dict[str, str], what: str) -> pd.DataFrame:
    """Rename the file's columns to ours (``mapping`` is ``{ours: theirs}``). A mapped column
    the file lacks, or a mapping onto a column the file also has, is a LearnopsError."""
    if not mapping:
        return df.reset_index(drop=True)
    missing = [theirs for theirs in mapping.values() if theirs not in df.columns]
    if missing:
        shown = ", ".join(map(str, list(df.columns)[:12]))
        raise LearnopsError(
            f"{what}: --map names column(s) the file does not have: {', '.join(missing)} "
            f"(its columns: {shown}{', …' if len(df.columns) > 12 else ''})"
        )
    clash = [o for o, t in mapping.items() if o in df.columns and o != t]
    if clash:
        raise LearnopsError(
            f"{what}: the file already has column(s) {', '.join(clash)}, which --map also "
            "fills from another column: drop one of them"
        )
    return df.rename(columns={t: o for o, t in mapping.items()}).reset_index(drop=True)


def line_numbers(path: str | Path, n_rows: int) -> list[str]:
    """Where each data row of the file is, for messages: ``line N`` of a CSV (the header is
    line 1; a quoted value over several lines counts them all; blank lines are skipped as the
    reader skips them), ``row N`` (1-based) of a Parquet table."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".csv", ".txt", ".csv.gz")) and p.is_file():
        opener = gzip.open if name.endswith(".gz") else open
        out: list[str] = []
        with opener(p, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            if next(reader, None) is None:
                return []
            start = reader.line_num + 1
            for record in reader:
                if record and any(field.strip() for field in record):
                    out.append(f"line {start}")
                start = reader.line_num + 1
        if len(out) == n_rows:
            return out
    return [f"row {i + 1}" for i in range(n_rows)]


RowError = tuple[int, str, str]  # (row position, column, reason)


def learner_hashes(
    df: pd.DataFrame,
    hashed_with: str | None,
    what: str,
    hash_ids: Callable[..., pd.DataFrame],
) -> tuple[pd.DataFrame, list[RowError]]:
    """``learner_hash`` for every row (``hash_ids``: the importer's file-level rules), with the
    rows whose raw ``learner_id`` is missing, blank or holds control characters reported as
    row errors (their hash left empty) rather than failing on the first one."""
    if "learner_id" not in df.columns or "learner_hash" in df.columns:
        return hash_ids(df, hashed_with, what), []
    values = df["learner_id"]
    missing = values.isna().to_numpy()
    text = values.astype(str)
    blank = ~missing & (text.str.strip().str.len() == 0).to_numpy()
    control = ~missing & text.str.contains(_CONTROL, regex=True).to_numpy()
    errors: list[RowError] = []
    checks = ((missing, "is empty"), (blank, "is blank"), (control, "has control chars"))
    for mask, reason in checks:
        errors += [(int(i), "learner_id", reason) for i in np.flatnonzero(mask)]
    bad = missing | blank | control
    good = df.loc[~bad]
    hashed = hash_ids(good, hashed_with, what) if len(good) else good.drop(columns="learner_id")
    out = df.drop(columns="learner_id").assign(learner_hash=pd.Series(pd.NA, index=df.index))
    out.loc[hashed.index, "learner_hash"] = hashed["learner_hash"]
    return out, errors


def timestamps(
    df: pd.DataFrame, fmt: str | None, now: datetime | None = None
) -> tuple[pd.DataFrame, list[RowError], str | None]:
    """Parse ``timestamp`` (ISO 8601 by default; ``fmt`` a strptime format such as
    ``%d/%m/%Y %H:%M``, or ``unix`` / ``unix_ms`` for epoch seconds / milliseconds; times
    without an offset are UTC). A table without the column gets one timestamp for every row,
    the import's time (whole seconds, UTC), and the note says so. Unparseable cells are row
    errors. Returns (table, errors, note)."""
    if "timestamp" not in df.columns:
        stamp = (now or datetime.now(UTC)).replace(microsecond=0)
        note = (
            f"the file has no timestamp column: its {len(df)} rows get the import time "
            f"{stamp:%Y-%m-%dT%H:%M:%SZ} (a learner's held-out responses are then drawn by row "
            "id, not by time); map a column with --map timestamp=COLUMN to keep your times"
        )
        return df.assign(timestamp=pd.Timestamp(stamp)), [], note
    raw = df["timestamp"]
    empty = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if fmt in ("unix", "unix_ms"):
        num = pd.to_numeric(raw, errors="coerce")
        parsed = pd.to_datetime(num, unit="s" if fmt == "unix" else "ms", utc=True, errors="coerce")
        how = f"not a number (--timestamp-format {fmt})"
    elif fmt:
        parsed = pd.to_datetime(raw.astype("string"), format=fmt, utc=True, errors="coerce")
        how = f"does not match --timestamp-format {fmt!r}"
    else:
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        how = "not an ISO 8601 time (pass --timestamp-format)"
    bad = ~empty & parsed.isna().to_numpy()
    errors = [(int(i), "timestamp", "is empty") for i in np.flatnonzero(empty)]
    errors += [(int(i), "timestamp", f"{_show(raw.iloc[i])!r} {how}") for i in np.flatnonzero(bad)]
    return df.assign(timestamp=parsed), errors, None


def natural_ids(
    df: pd.DataFrame, kind: str, id_column: str, given_times: pd.Series | None = None
) -> tuple[pd.DataFrame, str | None]:
    """Rows without an id get one made from their natural key, so that importing the same file
    again finds them stored: ``imp-`` + 32 hex of SHA-256 over (kind, learner_hash, item_id for
    responses or action for decisions, the time as the file gives it (``given_times``, the raw
    cells; empty when the file has none, so an assigned import time never enters the id), and
    the row's rank among the rows of the file with that same key: a repeated attempt is a row of
    its own). Returns the table and a note when ids were made."""
    if id_column in df.columns and df[id_column].notna().all():
        return df, None
    key_cols = ["learner_hash", "item_id" if kind == "responses" else "action", "timestamp"]
    key = pd.DataFrame({c: df[c].astype("string").fillna("") for c in key_cols[:2]})
    key["timestamp"] = (
        given_times.astype("string").fillna("").str.strip().to_numpy()
        if given_times is not None
        else ""
    )
    rank = key.groupby(key_cols, sort=False).cumcount().astype(str)
    made = [
        IMPORT_ID_PREFIX + hashlib.sha256("\x1f".join((kind, *parts)).encode()).hexdigest()[:32]
        for parts in zip(*(key[c] for c in key_cols), rank, strict=True)
    ]
    if id_column in df.columns:  # fill only the missing ones
        ids = df[id_column].astype("string")
        df = df.assign(**{id_column: ids.where(ids.notna(), pd.Series(made, index=df.index))})
        n = int(ids.isna().sum())
    else:
        df = df.assign(**{id_column: made})
        n = len(df)
    note = (
        f"{n} row(s) without {id_column}: ids made from (learner, "
        f"{'item' if kind == 'responses' else 'action'}, timestamp, repeat) so a re-import "
        "skips them"
    )
    return df, note


def coerce_numbers(
    df: pd.DataFrame, schema: pa.DataFrameSchema
) -> tuple[pd.DataFrame, list[RowError]]:
    """The schema's numeric columns as numbers (a CSV column with one bad cell is read as text,
    and pandera would then fail every row of it): cells that are not numbers are row errors and
    become empty."""
    errors: list[RowError] = []
    out = df.copy()
    for name, col in schema.columns.items():
        if name not in out.columns or str(col.dtype) not in ("int64", "float64"):
            continue
        raw = out[name]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            continue
        num = pd.to_numeric(raw, errors="coerce")
        text = raw.astype("string").str.strip()
        bad = (num.isna() & raw.notna() & (text != "").fillna(False)).to_numpy(dtype=bool)
        errors += [(int(i), name, f"is not a number (got {_show(raw.iloc[i])!r})")
                   for i in np.flatnonzero(bad)]  # fmt: skip
        out[name] = num
    return out, errors


_REASONS = {
    "not_nullable": "is empty",
    "field_uniqueness": "is repeated (ids must be unique)",
    "non-blank text without control characters": "is blank or has control characters",
}


def _reason(check: str) -> str:
    """A pandera check name as a short reason."""
    c = str(check)
    if c in _REASONS:
        return _REASONS[c]
    if c.startswith("coerce_dtype"):
        want = c[c.find("(") + 1 : c.rfind(")")].strip("'\"")
        return f"is not a valid {'whole number' if 'int' in want else want}"
    if c.startswith("isin("):
        return f"must be one of {c[5:-1]}"
    if c.startswith("in_range("):
        lo, _, hi = c[9:-1].partition(",")
        return f"must be within {lo.strip()}..{hi.strip()}"
    if c.startswith("greater_than_or_equal_to("):
        return f"must be >= {c[25:-1]}"
    if c.startswith("str_length("):
        return f"length must be within {c[11:-1].replace(', ', '..')}"
    return c


def _show(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def row_errors(
    df: pd.DataFrame, schema: pa.DataFrameSchema, skip: set[tuple[int, str]] | None = None
) -> list[RowError]:
    """Every row that fails ``schema`` (pandera, lazily: all failures), as (row position,
    column, reason); failures at a (row, column) in ``skip`` (already reported) are left out.
    Values of learner columns are never shown."""
    from learnops.data.schemas import prepare

    skip = skip or set()
    try:
        schema.validate(prepare(df, schema), lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    pos = pd.Series(np.arange(len(df)), index=df.index)
    out: list[RowError] = []
    for row in cases.itertuples(index=False):
        idx = getattr(row, "index", None)
        if idx is None or (isinstance(idx, float) and np.isnan(idx)) or idx not in pos.index:
            column = row.column if isinstance(row.column, str) else schema.name
            out.append((-1, str(column), f"{_reason(row.check)}"))
            continue
        p = int(pos[idx])
        column = row.column if isinstance(row.column, str) else "row"
        if (p, column) in skip or (column == "learner_hash" and (p, "learner_id") in skip):
            continue
        reason = _reason(row.check)
        if column not in _LEARNER_COLUMNS and column != "row" and row.failure_case is not None:
            reason += f" (got {_show(row.failure_case)!r})"
        out.append((p, column, reason))
    return out


def bad_rows_error(
    what: str, errors: list[RowError], where: list[str], n_rows: int
) -> LearnopsError:
    """One LearnopsError for the rows that failed: the message counts them, ``details`` lists
    the first :data:`MAX_LISTED` (``line N: column reason; …``) then how many more."""
    table_wide = sorted({f"{col}: {reason}" for p, col, reason in errors if p < 0})
    by_row: dict[int, list[str]] = {}
    for p, col, reason in sorted((e for e in errors if e[0] >= 0), key=lambda e: e[0]):
        text = f"{col} {reason}"
        if text not in by_row.setdefault(p, []):
            by_row[p].append(text)
    lines = [f"{where[p] if p < len(where) else f'row {p + 1}'}: {'; '.join(r)}"
             for p, r in by_row.items()]  # fmt: skip
    details = table_wide + lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        details.append(f"… and {len(lines) - MAX_LISTED} more bad row(s)")
    head = f"{what}: {len(by_row)} of {n_rows} row(s) are invalid, nothing was imported"
    if table_wide and not by_row:
        head = f"{what}: the table is invalid, nothing was imported"
    return LearnopsError(head + (" (listed below)" if details else ""), details)
