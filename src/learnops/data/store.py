"""The event store: SQLAlchemy 2 tables for decisions, responses, model versions, evaluations,
monitoring metrics and A/B tests (SQLite by default, any SQLAlchemy URL, e.g. PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from learnops.contracts import (
    ACTIONS,
    DECIDERS,
    DECISION_COLUMNS,
    DECISION_META,
    FEATURES,
    LOGGING_PROB_COLUMNS,
    RESPONSE_COLUMNS,
)
from learnops.errors import LearnopsError
from learnops.hashing import learner_hash
from learnops.io import jsonable

BATCH_SIZE = 50_000

#: The outcome fields of a decision (each recorded at most once).
OUTCOME_FIELDS = ("next_accuracy", "next_engagement", "session_completed", "total_session_time_ms")


class OutcomeConflict(LearnopsError):
    """An outcome field is already recorded with another value (outcomes are write-once)."""

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message)
        self.fields = fields


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = pd.Timestamp(value).to_pydatetime()
        elif isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Decision(Base):
    """One logged decision of the agent and, once known, its outcome (seed: MLTrainingData)."""

    __tablename__ = "ml_training_data"

    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_hash: Mapped[str] = mapped_column(String(64), index=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    propensity: Mapped[float | None] = mapped_column(Float)
    #: The logging policy drew the action uniformly at random (epsilon exploration).
    explored: Mapped[bool | None] = mapped_column(Boolean)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(32))
    difficulty_delta: Mapped[float | None] = mapped_column(Float)
    ab_test: Mapped[str | None] = mapped_column(String(64), index=True)
    ab_group: Mapped[str | None] = mapped_column(String(32))
    next_accuracy: Mapped[float | None] = mapped_column(Float)
    next_engagement: Mapped[float | None] = mapped_column(Float)
    session_completed: Mapped[bool | None] = mapped_column(Boolean)
    total_session_time_ms: Mapped[float | None] = mapped_column(Float)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# the 18 feature columns and the logging distribution, declared once from the contract
for _name in FEATURES:
    setattr(Decision, _name, mapped_column(_name, Float, nullable=False))
for _name in LOGGING_PROB_COLUMNS:
    setattr(Decision, _name, mapped_column(_name, Float, nullable=True))


class Response(Base):
    """One answered question (seed: TrainingData)."""

    __tablename__ = "training_data"

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_hash: Mapped[str] = mapped_column(String(64), index=True)
    item_id: Mapped[str] = mapped_column(String(128), index=True)
    module: Mapped[str | None] = mapped_column(String(128))
    correct: Mapped[int] = mapped_column(Integer)
    response_time_ms: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ModelVersion(Base):
    """A trained model version (seed: ModelVersion)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_type", "number", name="uq_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_type: Mapped[str] = mapped_column(String(16), index=True)
    number: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    data_count: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_fingerprint: Mapped[str | None] = mapped_column(String(128))
    code_fingerprint: Mapped[str | None] = mapped_column(String(128))
    config: Mapped[dict | None] = mapped_column(JSON)
    metrics: Mapped[dict | None] = mapped_column(JSON)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    training_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    training_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deployed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Until when the retrain of a ``training`` version is taken to be alive (it renews this).
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EvaluationResult(Base):
    """An evaluation of a model version (seed: MLEvaluationResults)."""

    __tablename__ = "ml_evaluation_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_type: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(32), index=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accuracy: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict] = mapped_column(JSON)


class MonitoringMetric(Base):
    """A monitoring observation or alert (seed: MLMonitoringMetrics)."""

    __tablename__ = "ml_monitoring_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    model_version: Mapped[str | None] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[float] = mapped_column(Float)
    labels: Mapped[dict | None] = mapped_column(JSON)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text)


class ABTest(Base):
    """An A/B test and, once stopped, its result (seed: MLABTestResults)."""

    __tablename__ = "ml_ab_test_results"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    groups: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[list] = mapped_column(JSON)
    min_sample_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    results: Mapped[dict | None] = mapped_column(JSON)
    winner: Mapped[str | None] = mapped_column(String(32))
    #: The arm the others are compared with (None in stores written before it was recorded).
    control: Mapped[str | None] = mapped_column(String(32))
    #: Who started it (``cli`` or ``api``).
    created_by: Mapped[str | None] = mapped_column(String(32))


class ABAssignment(Base):
    """A learner's group in an A/B test."""

    __tablename__ = "ab_assignments"

    test_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    group: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Setting(Base):
    """A store-wide setting shared by every process on the store (e.g. the salt fingerprint)."""

    __tablename__ = "learnops_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


#: The setting holding the fingerprint of the salt the store's learner hashes are made with.
SALT_SETTING = "salt_fingerprint"


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache for bulk loads and exports
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and their parent directory."""
    if url.startswith("sqlite:///") and url not in {"sqlite:///:memory:", "sqlite://"}:
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except Exception as exc:
        raise LearnopsError(f"invalid database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _clean(value: Any) -> Any:
    """NaN/NaT → None, numpy scalars → Python scalars."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def decision_row(
    learner_id: str,
    context: Mapping[str, Any],
    decision: Mapping[str, Any],
    timestamp: datetime | None = None,
    hashed: bool = False,
) -> dict[str, Any]:
    """A validated decision row in the store's format: learner id hashed (``hashed``: it is
    the server's HMAC already), id and time filled."""
    missing = [f for f in FEATURES if f not in context]
    if missing:
        raise LearnopsError(f"decision context misses feature(s): {', '.join(missing)}")
    if decision.get("action") not in ACTIONS:
        raise LearnopsError(
            f"unknown action {decision.get('action')!r}; expected one of {', '.join(ACTIONS)}"
        )
    if decision.get("decided_by", "ml") not in DECIDERS:
        raise LearnopsError(f"decided_by must be one of {', '.join(DECIDERS)}")
    row: dict[str, Any] = {f: float(context[f]) for f in FEATURES}
    row.update({k: _clean(decision.get(k)) for k in DECISION_META})
    row["decided_by"] = row["decided_by"] or "ml"
    row.update(
        decision_id=decision.get("decision_id") or uuid.uuid4().hex,
        learner_hash=str(learner_id) if hashed else _as_hash(learner_id),
        timestamp=timestamp or utcnow(),
    )
    return row


#: Columns added to a table after it was first released: added on open to stores created before.
ADDED_COLUMNS = (
    ("model_versions", "lease_expires_at"),
    ("ml_training_data", "explored"),
    *(("ml_training_data", c) for c in LOGGING_PROB_COLUMNS),
    ("ml_ab_test_results", "control"),
    ("ml_ab_test_results", "created_by"),
)


def add_missing_columns(engine: Engine) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for each of :data:`ADDED_COLUMNS` an existing table lacks
    (all nullable); the ``table.column`` names added."""
    from sqlalchemy import inspect, text

    added = []
    for table_name, column in ADDED_COLUMNS:
        insp = inspect(engine)
        if not insp.has_table(table_name):
            continue
        if column in {c["name"] for c in insp.get_columns(table_name)}:
            continue
        col = Base.metadata.tables[table_name].c[column]
        quote = engine.dialect.identifier_preparer.quote
        ddl = (
            f"ALTER TABLE {quote(table_name)} ADD COLUMN {quote(column)} "
            f"{col.type.compile(dialect=engine.dialect)}"
        )
        try:
            with engine.begin() as conn:
                conn.execute(text(ddl))
        except Exception:  # another process added it first
            if column not in {c["name"] for c in inspect(engine).get_columns(table_name)}:
                raise
            continue
        added.append(f"{table_name}.{column}")
    return added


class EventStore:
    """Transactional access to the learnops tables at one database URL."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            Base.metadata.create_all(self.engine)
            add_missing_columns(self.engine)

    def __repr__(self) -> str:
        return f"EventStore({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()

    # -- collector API (mirrors the seed) ------------------------------------------------------
    def record_decision(
        self,
        learner_id: str,
        context: Mapping[str, Any],
        decision: Mapping[str, Any],
        timestamp: datetime | None = None,
    ) -> str:
        """Log one decision: ``context`` holds the 18 features, ``decision`` the action and meta."""
        row = decision_row(learner_id, context, decision, timestamp)
        with self.session() as s:
            s.add(Decision(**row))
        return row["decision_id"]

    def record_outcome(self, decision_id: str, outcome: Mapping[str, Any]) -> bool:
        """Attach the observed outcome to a logged decision; each field is written once.

        ``None`` values are ignored (they never erase a recorded field); an outcome without any
        value raises ``LearnopsError``; a value that differs from the one recorded raises
        ``OutcomeConflict`` and changes nothing. Returns True when a field was newly recorded,
        False for an identical repeat."""
        unknown = set(outcome) - set(OUTCOME_FIELDS)
        if unknown:
            raise LearnopsError(f"unknown outcome field(s): {', '.join(sorted(unknown))}")
        values = {k: _clean(v) for k, v in outcome.items() if _clean(v) is not None}
        if not values:
            raise LearnopsError(f"an outcome needs at least one of {', '.join(OUTCOME_FIELDS)}")
        for key in ("next_accuracy", "next_engagement"):
            v = values.get(key)
            if v is not None and not 0.0 <= float(v) <= 1.0:
                raise LearnopsError(f"{key} must be within 0..1, got {v}")
        if "session_completed" in values:
            values["session_completed"] = bool(values["session_completed"])
        for key in ("next_accuracy", "next_engagement", "total_session_time_ms"):
            if key in values:
                values[key] = float(values[key])
        table = Decision.__table__
        pk = table.c.decision_id
        with self.session() as s:
            written = 0
            for key, value in values.items():  # set only where unset: atomic under concurrency
                written += s.execute(
                    update(table)
                    .where(pk == decision_id, table.c[key].is_(None))
                    .values({key: value})
                ).rowcount
            row = s.execute(select(*[table.c[k] for k in values]).where(pk == decision_id)).first()
            if row is None:
                raise LearnopsError(f"unknown decision id {decision_id!r}")
            conflicts = sorted(k for k, v in zip(values, row, strict=True) if v != values[k])
            if conflicts:  # raising rolls back the fields written above
                raise OutcomeConflict(
                    f"outcome already recorded with other values: {', '.join(conflicts)}",
                    conflicts,
                )
            if written:
                s.execute(update(table).where(pk == decision_id).values(outcome_at=utcnow()))
        return bool(written)

    def record_response(
        self,
        learner_id: str,
        item_id: str,
        correct: int | bool,
        response_time_ms: float | None = None,
        module: str | None = None,
        timestamp: datetime | None = None,
        response_id: str | None = None,
    ) -> str:
        """Log one answered question; returns its id."""
        if int(correct) not in (0, 1) or float(correct) != int(correct):
            raise LearnopsError(f"correct must be 0 or 1, got {correct!r}")
        rid = response_id or uuid.uuid4().hex
        with self.session() as s:
            s.add(
                Response(
                    response_id=rid,
                    learner_hash=_as_hash(learner_id),
                    item_id=str(item_id),
                    module=module,
                    correct=int(correct),
                    response_time_ms=response_time_ms,
                    timestamp=timestamp or utcnow(),
                )
            )
        return rid

    # -- bulk ----------------------------------------------------------------------------------
    def bulk_insert(self, model: type[Base], rows: pd.DataFrame, progress: bool = False) -> int:
        """Insert a DataFrame in batches, all in one transaction; returns the row count."""
        if len(rows) == 0:
            return 0
        with self.session() as s:
            self._insert_batches(s, model, rows, progress)
        return len(rows)

    def replace_simulated(
        self,
        responses: pd.DataFrame,
        decisions: pd.DataFrame,
        prefix: str,
        progress: bool = False,
    ) -> None:
        """Swap the simulated decisions and responses (ids starting with ``prefix``) for new ones
        in one transaction; refuses when the store holds rows the simulator did not make."""
        from sqlalchemy import delete

        foreign = {}
        with self.engine.connect() as conn:
            for model, pk in ((Response, "response_id"), (Decision, "decision_id")):
                col = model.__table__.c[pk]
                n = conn.execute(
                    select(func.count())
                    .select_from(model.__table__)
                    .where(~col.startswith(prefix, autoescape=True))
                ).scalar_one()
                if n:
                    foreign[model.__tablename__] = int(n)
        if foreign:
            raise LearnopsError(
                f"refusing to simulate into {self!r}: it holds non-simulated rows {foreign}; "
                "to run the pipeline on them set data.source: store in params.yaml, or point "
                "LEARNOPS_DB_URL at another database"
            )
        with self.session() as s:
            s.execute(delete(Response.__table__))
            s.execute(delete(Decision.__table__))
            for model, df in ((Response, responses), (Decision, decisions)):
                self._insert_batches(s, model, df, progress)

    def remove_simulated(self, prefix: str) -> dict[str, int]:
        """Delete the simulator's decisions and responses (ids starting with ``prefix``) in one
        transaction; the rows deleted per table (other rows and records are kept)."""
        from sqlalchemy import delete

        removed = {}
        with self.session() as s:
            for model, pk in ((Response, "response_id"), (Decision, "decision_id")):
                col = model.__table__.c[pk]
                res = s.execute(
                    delete(model.__table__).where(col.startswith(prefix, autoescape=True))
                )
                removed[model.__tablename__] = int(res.rowcount or 0)
        return removed

    def _insert_batches(
        self, s: Session, model: type[Base], rows: pd.DataFrame, progress: bool
    ) -> None:
        """executemany of plain DBAPI tuples (columns converted once, vectorized): the ORM's
        per-row type processing would cap SQLite well below 50k rows/s."""
        table = model.__table__
        cols = [c for c in table.columns if c.name in rows.columns]
        dialect = self.engine.dialect
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        # names come from the ORM metadata, quoted by the dialect; values are bound parameters
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in cols)}) "  # nosec B608
            f"VALUES ({', '.join([mark] * len(cols))})"
        )
        starts = range(0, len(rows), BATCH_SIZE)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"insert {table.name}", unit="batch")
        conn = s.connection()
        for start in starts:
            chunk = rows.iloc[start : start + BATCH_SIZE]
            values = [_db_values(chunk[c.name], c.type, dialect.name) for c in cols]
            conn.exec_driver_sql(sql, list(zip(*values, strict=True)))

    def insert_decisions(self, df: pd.DataFrame, progress: bool = False) -> int:
        """Bulk-insert exported-format decisions (learner_hash already hashed)."""
        return self.bulk_insert(Decision, df, progress)

    def insert_responses(self, df: pd.DataFrame, progress: bool = False) -> int:
        """Bulk-insert exported-format responses (learner_hash already hashed)."""
        return self.bulk_insert(Response, df, progress)

    # -- reading -------------------------------------------------------------------------------
    def read_decisions(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        ab_test: str | None = None,
    ) -> pd.DataFrame:
        """Decisions with since ≤ timestamp < until, the most recent ``limit``, in time order;
        with ``ab_test``, only the decisions logged in that A/B test."""
        return self._read(Decision, DECISION_COLUMNS, since, until, limit, ab_test=ab_test)

    def read_responses(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Responses with since ≤ timestamp < until, the most recent ``limit``, in time order."""
        return self._read(Response, RESPONSE_COLUMNS, since, until, limit)

    def read_learner_responses(
        self, learner_hash: str, until: datetime | None = None
    ) -> pd.DataFrame:
        """One learner's responses (``learner_hash`` as stored) with timestamp < ``until``, in
        time order (ties by response id): one query on the learner_hash index."""
        table = Response.__table__
        stmt = select(*[table.c[c] for c in RESPONSE_COLUMNS]).where(
            table.c.learner_hash == learner_hash
        )
        if until is not None:
            stmt = stmt.where(table.c.timestamp < UTCDateTime().process_bind_param(until, None))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(
            [tuple(r) for r in rows], columns=list(RESPONSE_COLUMNS), coerce_float=True
        )
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        return df.sort_values(["timestamp", "response_id"], kind="mergesort").reset_index(drop=True)

    def _read(
        self,
        model: type[Base],
        columns: Iterable[str],
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        ab_test: str | None = None,
    ) -> pd.DataFrame:
        table = model.__table__
        cols = list(columns)
        pk = next(iter(table.primary_key.columns))
        stmt = select(*[table.c[c] for c in cols])
        if ab_test is not None:
            stmt = stmt.where(table.c.ab_test == ab_test)
        if since is not None:
            stmt = stmt.where(table.c.timestamp >= UTCDateTime().process_bind_param(since, None))
        if until is not None:
            stmt = stmt.where(table.c.timestamp < UTCDateTime().process_bind_param(until, None))
        if limit is not None:
            stmt = stmt.order_by(table.c.timestamp.desc(), pk.desc()).limit(limit)
        with self.engine.connect() as conn:
            df = pd.read_sql(stmt, conn)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        return df.sort_values(["timestamp", pk.name], kind="mergesort").reset_index(drop=True)

    def iter_decisions(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        *,
        chunk_rows: int = 20_000,
    ) -> Iterator[pd.DataFrame]:
        """The rows of :meth:`read_decisions`, in the same order, ``chunk_rows`` at a time
        (streamed: a server-side cursor on PostgreSQL)."""
        return self._iter(Decision, DECISION_COLUMNS, since, until, limit, chunk_rows)

    def iter_responses(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        *,
        chunk_rows: int = 20_000,
    ) -> Iterator[pd.DataFrame]:
        """The rows of :meth:`read_responses`, in the same order, ``chunk_rows`` at a time."""
        return self._iter(Response, RESPONSE_COLUMNS, since, until, limit, chunk_rows)

    def _iter(
        self,
        model: type[Base],
        columns: Iterable[str],
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        chunk_rows: int,
    ) -> Iterator[pd.DataFrame]:
        """Rows with since ≤ timestamp < until (the most recent ``limit``) ordered by
        (timestamp, id) in the database, the id compared byte-wise (``COLLATE "C"`` on
        PostgreSQL: the order Python sorts the ids in)."""
        from sqlalchemy import and_, or_

        table = model.__table__
        cols = list(columns)
        pk_col = next(iter(table.primary_key.columns))
        pk = pk_col.collate("C") if self.engine.dialect.name == "postgresql" else pk_col
        ts = table.c.timestamp
        bind = UTCDateTime().process_bind_param
        window = []
        if since is not None:
            window.append(ts >= bind(since, None))
        if until is not None:
            window.append(ts < bind(until, None))
        with self.engine.connect() as conn:
            if limit is not None:  # the oldest of the newest ``limit`` rows: the start
                first = conn.execute(
                    select(ts, pk_col)
                    .where(*window)
                    .order_by(ts.desc(), pk.desc())
                    .offset(limit - 1)
                    .limit(1)
                ).first()
                if first is not None:
                    window.append(or_(ts > first[0], and_(ts == first[0], pk >= first[1])))
            stmt = select(*[table.c[c] for c in cols]).where(*window).order_by(ts, pk)
            result = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(
                stmt
            )
            for rows in result.partitions(chunk_rows):
                # plain tuples: pandas probes Row objects attribute by attribute
                df = pd.DataFrame.from_records(
                    [tuple(r) for r in rows], columns=cols, coerce_float=True
                )
                df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
                yield df

    def count(self, model: type[Base]) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model.__table__)).scalar_one())

    def latest_timestamp(self) -> datetime | None:
        """The newest decision or response timestamp in the store (None when empty)."""
        bind = UTCDateTime()
        with self.engine.connect() as conn:
            values = [
                conn.execute(select(func.max(m.__table__.c.timestamp))).scalar_one()
                for m in (Decision, Response)
            ]
        values = [
            bind.process_result_value(v, None)
            if not isinstance(v, str)
            else pd.Timestamp(v).to_pydatetime().replace(tzinfo=UTC)
            for v in values
            if v is not None
        ]
        return max(values) if values else None

    # -- settings ------------------------------------------------------------------------------
    def claim_salt(self) -> str:
        """Record the fingerprint of this process's salt (env ``LEARNOPS_SALT``) in the store on
        first use and check it afterwards, so that every worker and replica writing to the
        store hashes learner ids with the same secret; LearnopsError when the store recorded
        another salt. Returns the fingerprint."""
        from sqlalchemy.exc import IntegrityError

        from learnops.hashing import salt_fingerprint

        mine = salt_fingerprint()
        for _ in range(3):
            with self.session() as s:
                have = s.get(Setting, SALT_SETTING)
                if have is not None:
                    if have.value != mine:
                        raise LearnopsError(
                            f"LEARNOPS_SALT differs from the salt of this store's learner hashes "
                            f"(fingerprint {mine}, the store's {have.value}): every worker and "
                            "replica must share the store's LEARNOPS_SALT"
                        )
                    return mine
            try:
                with self.session() as s:
                    s.add(Setting(key=SALT_SETTING, value=mine))
                return mine
            except IntegrityError:  # another worker recorded it first: compare with it
                continue
        raise LearnopsError("could not record the salt fingerprint in the store")

    # -- A/B and monitoring records --------------------------------------------------------------
    def record_evaluation(
        self,
        model_type: str,
        model_version: str,
        metrics: Mapping[str, Any],
        accuracy: float | None = None,
    ) -> int:
        """Store an evaluation (MLEvaluationResults); returns its id."""
        payload = jsonable(metrics)
        with self.session() as s:
            row = EvaluationResult(
                model_type=model_type,
                model_version=model_version,
                evaluated_at=utcnow(),
                accuracy=accuracy,
                metrics=payload,
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def record_metric(
        self,
        metric: str,
        value: float,
        model_version: str | None = None,
        labels: Mapping[str, Any] | None = None,
        alert: bool = False,
        message: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Store a monitoring observation or alert (MLMonitoringMetrics)."""
        with self.session() as s:
            s.add(
                MonitoringMetric(
                    timestamp=timestamp or utcnow(),
                    model_version=model_version,
                    metric=metric,
                    value=float(value),
                    labels=dict(labels or {}),
                    alert=alert,
                    message=message,
                )
            )


def _db_values(col: pd.Series, sqltype: Any, dialect: str) -> list[Any]:
    """A column as a list of DBAPI-ready Python values (None for missing)."""
    if isinstance(sqltype, UTCDateTime):
        ts = pd.to_datetime(col, utc=True).dt.tz_localize(None)
        if dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME storage format
            out = ts.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
        else:
            out = list(ts.dt.to_pydatetime())
    else:
        out = col.tolist()
    missing = col.isna().to_numpy()
    if missing.any():
        for i in np.flatnonzero(missing):
            out[i] = None
    if isinstance(sqltype, Boolean):
        out = [None if v is None else bool(v) for v in out]
    elif isinstance(sqltype, Integer):
        out = [None if v is None else int(v) for v in out]
    return out


def _as_hash(learner_id: str) -> str:
    """HMAC a learner id as a client sent it, always: an id that merely looks like a hash (64
    hex characters, e.g. an unsalted sha256 of an email) is hashed like any other. Pre-hashed
    ids enter only through the importer, which checks them."""
    return learner_hash(str(learner_id))
