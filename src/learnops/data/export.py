"""Export a time window of the event store to validated Parquet tables, streaming.

Rows are read from the store in chunks of ``chunk_rows`` (a server-side cursor on PostgreSQL),
in (timestamp, id) order, validated chunk by chunk and appended to one Parquet file per table
(``decisions.parquet``, ``responses.parquet``), so the export's memory is bounded by the chunk
size, not by the window (with ``irt.ability_model`` elo or best_lr, the model fitted on the
window's answers adds memory proportional to the responses, never to the decisions: see
:func:`export`). The file is partitioned by UTC day into row groups: a row group never
holds two days (and at most ``ROW_GROUP_ROWS`` rows), so a reader can take one day by the row
groups' timestamp statistics, and its layout depends on the rows only, not on ``chunk_rows``.

The export is byte-stable: the same store content gives the same bytes, and a Parquet file whose
bytes would not change is left untouched, so re-running the export on an unchanged store changes
nothing (the DVC stage runs on every ``dvc repro`` to pick up new rows in the store).

A window with decisions but no responses (e.g. only today's served traffic), or the reverse,
exports the empty table with its schema (``Exported.empty`` names it); the model stages that
read it then stop with *No training data available* and leave their previous model alone.
``min_data_points`` applies to each table that has rows; a window with no rows at all fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from learnops.config import ExportConfig
from learnops.data.schemas import validate_decisions, validate_responses
from learnops.data.store import EventStore
from learnops.errors import LearnopsError, NoTrainingData
from learnops.io import release_free_memory, write_bytes

#: Sort key of each exported table: time, then the row id (a total order, so the bytes are stable).
SORT_KEYS: dict[str, list[str]] = {
    "decisions": ["timestamp", "decision_id"],
    "responses": ["timestamp", "response_id"],
}
#: Rows read from the store (and validated) at a time: what bounds the export's memory.
CHUNK_ROWS = 20_000
#: Most rows in one Parquet row group (a row group also never spans two UTC days).
ROW_GROUP_ROWS = 100_000
_COMPRESSION = "snappy"


@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until) in UTC."""

    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}

    def days(self) -> str:
        """The window as the dates the user means, both inclusive (for messages)."""
        last = self.until - timedelta(microseconds=1)
        return f"{self.since:%Y-%m-%d} .. {last:%Y-%m-%d}"


@dataclass
class Exported:
    """What an export wrote and where; ``written[name]`` is False when the file on disk already
    held exactly these bytes and was kept. ``decisions`` and ``responses`` read the written
    tables back on first use (whole: for the model stages and small data)."""

    window: Window
    paths: dict[str, Path]
    counts: dict[str, int]
    n_learners: int
    n_items: int
    written: dict[str, bool] = field(default_factory=dict)
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame:
        """The exported table ``name`` (``decisions`` or ``responses``), read once."""
        if name not in self._tables:
            self._tables[name] = pd.read_parquet(self.paths[name])
        return self._tables[name]

    @property
    def decisions(self) -> pd.DataFrame:
        return self.table("decisions")

    @property
    def responses(self) -> pd.DataFrame:
        return self.table("responses")

    @property
    def empty(self) -> list[str]:
        """The tables exported without rows (written with their schema only)."""
        return [n for n in ("decisions", "responses") if self.counts[n] == 0]

    def summary(self) -> dict:
        return {
            **self.window.as_dict(),
            "n_decisions": self.counts["decisions"],
            "n_responses": self.counts["responses"],
            "n_learners": self.n_learners,
            "n_items": self.n_items,
        }


def _day_start(d) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def resolve_window(cfg: ExportConfig, latest: datetime | None) -> Window:
    """The export window: ``until`` (a date, inclusive) defaults to the newest event in the store,
    so re-running on unchanged data gives the same window; ``since`` wins over ``last_days``."""
    if cfg.until is not None:
        until = _day_start(cfg.until) + timedelta(days=1)
    elif latest is not None:
        until = latest + timedelta(microseconds=1)
    else:
        raise NoTrainingData("the event store is empty")
    if cfg.since is not None:
        since = _day_start(cfg.since)
    elif cfg.last_days is not None:
        since = until - timedelta(days=cfg.last_days)
    else:
        since = datetime(1970, 1, 1, tzinfo=UTC)
    if since >= until and cfg.until is None:
        raise NoTrainingData(f"the window starts {since:%Y-%m-%d}, after the newest event")
    if since >= until:
        raise LearnopsError(
            f"empty export window: since {since:%Y-%m-%d} is not before (or on) until "
            f"{cfg.until:%Y-%m-%d}"
        )
    return Window(since, until)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet bytes (no index): the same table gives the same bytes."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="snappy")
    return buf.getvalue()


def write_parquet_if_changed(path: str | Path, df: pd.DataFrame) -> bool:
    """Write ``df`` as Parquet atomically unless ``path`` already holds exactly these bytes
    (then the file, and its modification time, are kept). True when the file was written."""
    data = parquet_bytes(df)
    p = Path(path)
    if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data:
        return False
    write_bytes(p, data)
    return True


def sort_rows(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows in the deterministic export order (``keys``), with a fresh index."""
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _arrow_schema(validate: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str]) -> Any:
    """The Parquet schema of a validated table (pandas metadata included): the one
    ``DataFrame.to_parquet`` gives the validated table, with every column's type fixed (a chunk
    whose nullable text column holds only nulls keeps the text type)."""
    import pyarrow as pa

    empty = validate(pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}))
    meta = pa.Schema.from_pandas(empty, preserve_index=False).metadata
    fields = []
    for name in empty.columns:
        dtype = empty[name].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            typ = pa.timestamp("ns", tz="UTC")
        elif pd.api.types.is_bool_dtype(dtype):
            typ = pa.bool_()
        elif pd.api.types.is_integer_dtype(dtype):
            typ = pa.int64()
        elif pd.api.types.is_float_dtype(dtype):
            typ = pa.float64()
        else:
            typ = pa.string()
        fields.append(pa.field(name, typ))
    return pa.schema(fields, metadata=meta)


class _DayRowGroups:
    """Appends sorted chunks to a Parquet file in row groups cut at UTC day boundaries and every
    ``ROW_GROUP_ROWS`` rows (the cuts depend on the rows only, not on how they were chunked)."""

    def __init__(self, path: Path, schema: Any, row_group_rows: int) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self.row_group_rows = row_group_rows
        self.writer = pq.ParquetWriter(path, schema, compression=_COMPRESSION)
        self._buf: list[Any] = []
        self._buf_rows = 0
        self._day: Any = None

    def _emit(self, rows: int | None = None) -> None:
        import pyarrow as pa

        if not self._buf_rows:
            return
        table = pa.concat_tables(self._buf)
        take = table.num_rows if rows is None else rows
        self.writer.write_table(table.slice(0, take), row_group_size=take)
        rest = table.slice(take)
        self._buf, self._buf_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def append(self, df: pd.DataFrame) -> None:
        import numpy as np
        import pyarrow as pa

        days = df["timestamp"].dt.floor("D").to_numpy()
        table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        for lo, hi in zip([0, *cuts], [*cuts, len(df)], strict=True):
            if hi == lo:
                continue
            if self._day is not None and days[lo] != self._day:
                self._emit()  # a new day: close the last day's row group
            self._day = days[lo]
            self._buf.append(table.slice(lo, hi - lo))
            self._buf_rows += hi - lo
            while self._buf_rows >= self.row_group_rows:
                self._emit(self.row_group_rows)

    def close(self) -> None:
        self._emit()
        self.writer.close()


@dataclass
class _Streamed:
    """One table streamed to a temporary file."""

    tmp: Path
    rows: int = 0
    last: pd.Timestamp | None = None
    """The latest timestamp (the last row's: rows come in time order)."""
    learners: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)


def _stream_table(
    chunks: Iterator[pd.DataFrame],
    validate: Callable[[pd.DataFrame], pd.DataFrame],
    columns: list[str],
    target: Path,
    row_group_rows: int,
    ids: dict[str, str] | None = None,
) -> _Streamed:
    """Validate each chunk and append it to a temporary file beside ``target``; the file is
    removed when anything fails. ``ids``: the learner ids seen so far (each id to its one str
    object, shared by the tables: a learner hash takes about 110 bytes a copy)."""
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    out = _Streamed(Path(tmp))
    try:
        writer = _DayRowGroups(out.tmp, _arrow_schema(validate, columns), row_group_rows)
        try:
            for chunk in chunks:
                df = validate(chunk)
                writer.append(df)
                out.rows += len(df)
                if len(df):
                    out.last = df["timestamp"].iloc[-1]
                learners = df["learner_hash"].unique().tolist()
                if ids is not None:
                    learners = [ids.setdefault(v, v) for v in learners]
                out.learners.update(learners)
                if "item_id" in df:
                    out.items.update(df["item_id"].unique().tolist())
        finally:
            writer.close()
    except BaseException:
        out.tmp.unlink(missing_ok=True)
        raise
    return out


def _same_bytes(a: Path, b: Path, block: int = 1 << 20) -> bool:
    """True when two files hold the same bytes (read a block at a time)."""
    if not b.is_file() or a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return False
            if not x:
                return True


def _install(tmp: Path, target: Path) -> bool:
    """Move ``tmp`` over ``target`` atomically unless ``target`` holds the same bytes (then it
    is kept, modification time included); True when the file was replaced."""
    if _same_bytes(tmp, target):
        tmp.unlink()
        return False
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)
    return True


class AbilitySource(Protocol):
    """What an ability model gives the export: (ability, ability_se) per (learner, time)."""

    def asof(self, learners: Any, timestamps: Any) -> tuple[Any, Any]: ...


#: ``abilities(responses, learners, until)``: the ability source fitted on the window's answers
#: (:data:`ABILITY_COLUMNS`, ids categorical) with every decision learner up to the last decision
#: time ``until``, or None to keep the logged ability/ability_se. The answers are handed over:
#: the function may drop their columns once read (the export reads them for it alone).
Abilities = Callable[[pd.DataFrame, "set[str]", pd.Timestamp], "AbilitySource | None"]

#: The response columns an ability model reads (the others are not read back).
ABILITY_COLUMNS = ("learner_hash", "item_id", "module", "correct", "timestamp")


def read_answers(path: str | Path, learner_ids: dict[str, str] | None = None) -> pd.DataFrame:
    """The :data:`ABILITY_COLUMNS` of a responses Parquet file, compactly and one row group at a
    time: ids categorical (sorted categories; read dictionary-encoded, never a str per row),
    ``correct`` int8, ``timestamp`` datetime64[ns, UTC] — about 17 bytes a response plus the
    distinct ids (``learner_ids``: learner ids already in memory, each to its str object, which
    the learner categories then share)."""
    import numpy as np
    import pyarrow.parquet as pq

    ids = ("learner_hash", "item_id", "module")
    src = pq.ParquetFile(path, read_dictionary=list(ids))
    n = src.metadata.num_rows
    codes = {c: np.empty(n, dtype=np.int32) for c in ids}
    seen: dict[str, dict[str, int]] = {c: {} for c in ids}
    correct = np.empty(n, dtype=np.int8)
    stamps = np.empty(n, dtype="datetime64[ns]")
    at = 0
    try:
        for i in range(src.num_row_groups):
            group = src.read_row_group(i, columns=list(ABILITY_COLUMNS))
            m = group.num_rows
            for c in ids:
                col = group.column(c).combine_chunks()
                local = seen[c]
                values = col.dictionary.to_pylist()
                if c == "learner_hash" and learner_ids is not None:
                    values = [learner_ids.get(v, v) for v in values]
                mapping = [local.setdefault(v, len(local)) for v in values]
                mapping = np.array(mapping, dtype=np.int32)
                index = col.indices.fill_null(-1).to_numpy().astype(np.int64)
                codes[c][at : at + m] = np.where(index >= 0, mapping[np.maximum(index, 0)], -1)
            correct[at : at + m] = group.column("correct").to_numpy().astype(np.int8)
            ts = group.column("timestamp").combine_chunks().cast("int64").to_numpy()
            stamps[at : at + m] = ts.view("datetime64[ns]")
            at += m
            del group
    finally:
        src.close()
    out = {}
    for c in ids:
        names = pd.Index(list(seen[c]), dtype=object)
        order = np.argsort(names.to_numpy(), kind="stable")  # sorted categories
        rank = np.empty(len(names) + 1, dtype=np.int32)
        rank[order] = np.arange(len(names), dtype=np.int32)
        rank[-1] = -1  # a missing value (code -1) stays missing
        np.take(rank, codes[c], out=codes[c], mode="wrap")  # in place
        dtype = pd.CategoricalDtype(names[order])
        out[c] = pd.Categorical.from_codes(codes.pop(c), dtype=dtype, validate=False)
    out["correct"] = correct
    out["timestamp"] = pd.DatetimeIndex(stamps, copy=False).tz_localize("UTC")
    return pd.DataFrame(out, columns=list(ABILITY_COLUMNS), copy=False)


def _supply_abilities(
    streamed: dict[str, _Streamed],
    abilities: Abilities,
    row_group_rows: int,
    ids: dict[str, str] | None = None,
) -> None:
    """Rewrite the streamed decisions with the abilities the source ``abilities`` fits on the
    streamed responses supplies as of each decision (same rows, same row groups), one row group
    at a time: memory is the source (fitted on the answers' columns only) plus one row group.
    ``ids``: the streamed learner ids (:func:`_stream_table`), emptied once the answers are
    read."""
    import pyarrow.parquet as pq

    from learnops.contracts import DECISION_COLUMNS

    dec = streamed["decisions"]
    release_free_memory()  # the streaming's buffers, before the answers and the model's arrays
    answers = read_answers(streamed["responses"].tmp, ids)
    if ids is not None:
        ids.clear()  # the learner ids stay, in the streamed tables' sets and the answers
    source = abilities(answers, dec.learners, dec.last)
    del answers
    if source is None:
        return
    release_free_memory()  # the fit's working set, before the decisions are rewritten
    schema = _arrow_schema(validate_decisions, list(DECISION_COLUMNS))
    src = pq.ParquetFile(dec.tmp)
    out = dec.tmp.with_name(dec.tmp.name + ".abilities")
    try:
        writer = _DayRowGroups(out, schema, row_group_rows)
        try:
            for i in range(src.num_row_groups):
                chunk = src.read_row_group(i).to_pandas()
                ability, se = source.asof(chunk["learner_hash"], chunk["timestamp"])
                chunk["ability"] = ability
                chunk["ability_se"] = se
                writer.append(validate_decisions(chunk))
                del chunk
        finally:
            writer.close()
            src.close()
        os.replace(out, dec.tmp)
    finally:
        out.unlink(missing_ok=True)


def export(
    store: EventStore,
    cfg: ExportConfig,
    out_dir: str | Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    abilities: Abilities | None = None,
) -> Exported:
    """Stream the window from the store ``chunk_rows`` rows at a time, validate each chunk and
    write both tables atomically as Parquet (sorted by time then id, row groups cut at UTC days;
    unchanged files are kept byte for byte). Nothing is replaced unless both tables validate
    and have at least ``cfg.min_data_points`` rows (or none).

    ``abilities``, when given (the export stage passes it for ``irt.ability_model`` other than
    ``irt``; see :data:`Abilities`), replaces the decisions' ``ability``/``ability_se`` with the
    chosen model's estimate as of each decision. That model is fitted on every answer of the
    window, so its memory grows with the window's *responses*: only their
    :data:`ABILITY_COLUMNS` are read back (:func:`read_answers`: ids categorical, about 17 bytes
    a response, the learner ids sharing the streamed tables' str objects), the model is fitted
    on them and keeps each learner's estimate as of each of their answers
    (:class:`~learnops.learner_models.ability.AbilityTrajectory`, 28 bytes an answer). Elo
    takes the answers over (their columns are dropped once coded) and works on compact
    sequences: about 20 bytes an answer, 13 more for the rounds of the tuning grid and of the
    refit and replay, which writes the trajectory in place. Freed memory is given back to the
    system before and after the fit (:func:`~learnops.io.release_free_memory`). The decisions are
    then rewritten one row group at a time (an as-of join on that trajectory), so they never
    count more than one row group: peak memory is the trajectory and the fit's working set,
    plus one row group of decisions."""
    from learnops.contracts import DECISION_COLUMNS, RESPONSE_COLUMNS

    if chunk_rows < 1 or row_group_rows < 1:
        raise LearnopsError("chunk_rows and row_group_rows must be at least 1")
    window = resolve_window(cfg, store.latest_timestamp())
    out = Path(out_dir)
    paths = {name: out / f"{name}.parquet" for name in ("decisions", "responses")}
    specs = {
        "decisions": (store.iter_decisions, validate_decisions, list(DECISION_COLUMNS)),
        "responses": (store.iter_responses, validate_responses, list(RESPONSE_COLUMNS)),
    }
    streamed: dict[str, _Streamed] = {}
    ids: dict[str, str] = {}  # each learner id once, whichever table it comes from
    try:
        for name, (read, validate, columns) in specs.items():
            chunks = read(window.since, window.until, cfg.limit, chunk_rows=chunk_rows)
            streamed[name] = _stream_table(
                chunks, validate, columns, paths[name], row_group_rows, ids
            )
        counts = {name: st.rows for name, st in streamed.items()}
        if not any(counts.values()):
            raise NoTrainingData(f"no decisions or responses in {window.days()} (inclusive)")
        for name, n in counts.items():
            if 0 < n < cfg.min_data_points:
                raise LearnopsError(
                    f"not enough {name} in the window: {n} < min_data_points="
                    f"{cfg.min_data_points} ({window.days()}, inclusive)"
                )
        if abilities is not None and counts["decisions"]:
            _supply_abilities(streamed, abilities, row_group_rows, ids)
        ids.clear()
        written = {name: _install(st.tmp, paths[name]) for name, st in streamed.items()}
    finally:
        for st in streamed.values():
            st.tmp.unlink(missing_ok=True)
    learners = streamed["decisions"].learners | streamed["responses"].learners
    return Exported(
        window,
        paths,
        counts,
        n_learners=len(learners),
        n_items=len(streamed["responses"].items),
        written=written,
    )
