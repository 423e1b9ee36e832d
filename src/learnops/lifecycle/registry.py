"""Model registry over the event store: versions v1, v2, … per model type, immutable artifacts,
one production version per type, atomic deploy and rollback, a retrain lock and training leases.

A version in ``training`` holds a lease (``lease_expires_at``) that its retrain renews every
``HEARTBEAT_S`` seconds; a process killed mid-training stops renewing it, and once it has expired
the next server start or retrain marks the version ``failed`` with error ``interrupted``."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess  # nosec B404: fixed git arguments for the code fingerprint, no shell
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from learnops.data.store import EventStore, ModelVersion, utcnow
from learnops.errors import LearnopsError, TrainingInProgress
from learnops.io import jsonable, write_json

log = logging.getLogger("learnops.registry")

#: ``learner``: the ability model ``irt.ability_model`` names (learnops.learner_models.artifact).
MODEL_TYPES = ("mlp", "irt", "learner")
STATUSES = ("training", "completed", "deployed", "archived", "failed")
#: How long a training version's lease lasts without a heartbeat (seconds).
LEASE_S = 30.0
#: How often a running retrain renews its lease (seconds).
HEARTBEAT_S = 5.0
#: The error of a version whose retrain died (its lease expired while it was training).
INTERRUPTED = "interrupted"
#: The PostgreSQL advisory lock of the retrain: (class, id) of ``pg_try_advisory_lock(int, int)``
#: ("lnop" in ASCII, 1).
LOCK_CLASS, LOCK_RETRAIN = 0x6C6E6F70, 1


@dataclass(frozen=True)
class VersionInfo:
    """A read-only view of one registered version."""

    model_type: str
    version: str
    number: int
    status: str
    data_count: int | None
    window_start: datetime | None
    window_end: datetime | None
    data_fingerprint: str | None
    code_fingerprint: str | None
    config: dict | None
    metrics: dict | None
    artifact_path: str | None
    error: str | None
    created_at: datetime
    training_started_at: datetime | None
    training_completed_at: datetime | None
    deployed_at: datetime | None
    lease_expires_at: datetime | None

    @classmethod
    def of(cls, row: ModelVersion) -> VersionInfo:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


def code_fingerprint(repo: str | Path = ".") -> str:
    """``git:<commit>`` plus ``+dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        commit = subprocess.run(  # nosec B603 B607 (fixed git command, no shell, timeout)
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # nosec B603 B607 (fixed git command, no shell, timeout)
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"git:{commit}" + ("+dirty" if dirty else "")


def _tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(directory)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class Registry:
    """Versions and their artifacts; the database row is the source of truth, the artifact
    directory ``root/<type>/<version>/`` is written once and made read-only."""

    def __init__(
        self,
        store: EventStore,
        root: str | Path,
        *,
        lease_s: float | None = None,
        heartbeat_s: float | None = None,
    ) -> None:
        self.store = store
        self.root = Path(root)
        self.lease_s = float(LEASE_S if lease_s is None else lease_s)
        self.heartbeat_s = float(HEARTBEAT_S if heartbeat_s is None else heartbeat_s)

    # -- queries -------------------------------------------------------------------------------
    def list(self, model_type: str | None = None) -> list[VersionInfo]:
        """All versions (of one type), oldest first."""
        stmt = select(ModelVersion).order_by(ModelVersion.model_type, ModelVersion.number)
        if model_type:
            _check_type(model_type)
            stmt = stmt.where(ModelVersion.model_type == model_type)
        with self.store.session() as s:
            return [VersionInfo.of(r) for r in s.scalars(stmt)]

    def get(self, model_type: str, version: str) -> VersionInfo:
        """One version; LearnopsError when unknown."""
        with self.store.session() as s:
            return VersionInfo.of(self._row(s, model_type, version))

    def production(self, model_type: str) -> VersionInfo | None:
        """The deployed version of a type, if any."""
        return self.productions([model_type])[model_type]

    def productions(self, model_types: Iterable[str]) -> dict[str, VersionInfo | None]:
        """The deployed version of each of ``model_types`` (None where there is none), read
        in one query."""
        types = list(dict.fromkeys(model_types))
        for t in types:
            _check_type(t)
        out: dict[str, VersionInfo | None] = dict.fromkeys(types)
        with self.store.session() as s:
            rows = s.scalars(
                select(ModelVersion)
                .where(ModelVersion.model_type.in_(types), ModelVersion.status == "deployed")
                .order_by(ModelVersion.id)
            )
            for row in rows:
                if out[row.model_type] is None:  # the first, as production() always took
                    out[row.model_type] = VersionInfo.of(row)
        return out

    def find_identical(
        self, model_type: str, data_fp: str, artifact_digest: str
    ) -> VersionInfo | None:
        """A completed/deployed/archived version with the same data and artifact bytes."""
        for v in reversed(self.list(model_type)):
            if (
                v.data_fingerprint == data_fp
                and v.status in {"completed", "deployed", "archived"}
                and (v.config or {}).get("artifact_digest") == artifact_digest
            ):
                return v
        return None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(
        self,
        model_type: str,
        *,
        config: Mapping[str, Any] | None = None,
        data_count: int | None = None,
        window: tuple[datetime, datetime] | None = None,
        data_fp: str | None = None,
        code_fp: str | None = None,
    ) -> VersionInfo:
        """Open a new version in status ``training`` (its lease runs for ``lease_s`` seconds:
        renew it with :meth:`lease`); numbers are never reused."""
        _check_type(model_type)
        for _ in range(5):
            try:
                with self.store.session() as s:
                    last = (
                        s.scalar(
                            select(func.max(ModelVersion.number)).where(
                                ModelVersion.model_type == model_type
                            )
                        )
                        or 0
                    )
                    now = utcnow()
                    row = ModelVersion(
                        model_type=model_type,
                        number=last + 1,
                        version=f"v{last + 1}",
                        status="training",
                        data_count=data_count,
                        window_start=window[0] if window else None,
                        window_end=window[1] if window else None,
                        data_fingerprint=data_fp,
                        code_fingerprint=code_fp,
                        config=dict(config or {}),
                        created_at=now,
                        training_started_at=now,
                        lease_expires_at=now + timedelta(seconds=self.lease_s),
                    )
                    s.add(row)
                    s.flush()
                    return VersionInfo.of(row)
            except IntegrityError:  # a concurrent writer took the number: take the next one
                continue
        raise LearnopsError(f"could not allocate a new {model_type} version number")

    def complete(
        self, model_type: str, version: str, artifact_dir: str | Path, metrics: Mapping[str, Any]
    ) -> VersionInfo:
        """Copy the artifacts in (immutable) and mark the version ``completed``."""
        src = Path(artifact_dir)
        if not src.is_dir():
            raise LearnopsError(f"artifact directory not found: {src}")
        current = self.get(model_type, version)
        if current.status != "training":
            raise LearnopsError(f"{model_type} {version} is {current.status}, not training")
        dest = self.root / model_type / version
        if dest.exists():
            raise LearnopsError(f"artifacts of {model_type} {version} already exist: {dest}")
        tmp = dest.with_name(f".{version}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        digest = _tree_digest(tmp)
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o444)
        os.replace(tmp, dest)
        with self.store.session() as s:
            row = self._row(s, model_type, version)
            if row.status != "training":
                raise LearnopsError(f"{model_type} {version} is {row.status}, not training")
            row.status = "completed"
            row.metrics = jsonable(metrics)
            row.config = {**(row.config or {}), "artifact_digest": digest}
            row.artifact_path = str(dest)
            row.training_completed_at = utcnow()
            return VersionInfo.of(row)

    def fail(self, model_type: str, version: str, error: str) -> VersionInfo:
        """Mark a version ``failed`` with its error; production is untouched."""
        with self.store.session() as s:
            row = self._row(s, model_type, version)
            row.status = "failed"
            row.error = error[:4000]
            row.training_completed_at = utcnow()
            return VersionInfo.of(row)

    # -- training leases -----------------------------------------------------------------------
    def renew_lease(self, model_type: str, version: str) -> bool:
        """Extend the lease of a ``training`` version by ``lease_s`` from now; False when the
        version is no longer training (finished, or marked interrupted meanwhile)."""
        _check_type(model_type)
        expires = utcnow() + timedelta(seconds=self.lease_s)
        with self.store.session() as s:
            result = s.execute(
                update(ModelVersion)
                .where(
                    ModelVersion.model_type == model_type,
                    ModelVersion.version == version,
                    ModelVersion.status == "training",
                )
                .values(lease_expires_at=expires)
            )
            return bool(result.rowcount)

    @contextmanager
    def lease(self, model_type: str, version: str) -> Iterator[None]:
        """Renew the lease of a training version every ``heartbeat_s`` seconds (in a background
        thread) while the block runs. A failed renewal (a locked or unreachable database) is
        logged and retried at the next beat."""
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    if not self.renew_lease(model_type, version):
                        return
                except Exception as exc:
                    log.warning("lease of %s %s not renewed: %s", model_type, version, exc)
                if stop.wait(self.heartbeat_s):
                    return

        thread = threading.Thread(target=beat, name=f"lease-{model_type}-{version}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=self.heartbeat_s + 1)

    def _lease_end(self, row: ModelVersion | VersionInfo) -> datetime:
        """When the lease of a training version ends (versions from before leases: their start
        plus ``lease_s``)."""
        if row.lease_expires_at is not None:
            return row.lease_expires_at
        start = row.training_started_at or row.created_at
        return start + timedelta(seconds=self.lease_s)

    def recover_interrupted(self, *, holding_lock: bool = False) -> list[VersionInfo]:
        """Mark ``failed`` (error ``interrupted``) every ``training`` version whose lease has
        expired: its retrain died. Nothing is marked while another process holds the retrain
        lock (its heartbeat may only be stalled); a caller holding the lock says so with
        ``holding_lock``. The versions marked."""
        if not holding_lock and self.is_training():
            return []
        now = utcnow()
        out = []
        with self.store.session() as s:
            rows = s.scalars(select(ModelVersion).where(ModelVersion.status == "training"))
            for row in rows:
                if self._lease_end(row) <= now:
                    row.status = "failed"
                    row.error = INTERRUPTED
                    row.training_completed_at = now
                    out.append(VersionInfo.of(row))
        for v in out:
            log.warning("%s %s: retrain interrupted, marked failed", v.model_type, v.version)
        return out

    def next_lease_end(self) -> datetime | None:
        """The earliest lease end of the versions in ``training`` (None: nothing training)."""
        ends = [self._lease_end(v) for v in self.list() if v.status == "training"]
        return min(ends) if ends else None

    def deploy(self, model_type: str, version: str) -> VersionInfo:
        """Make ``version`` production in one transaction; the previous one is archived."""
        with self.store.session() as s:
            row = self._row(s, model_type, version)
            if row.status not in {"completed", "archived", "deployed"}:
                raise LearnopsError(f"cannot deploy {model_type} {version}: status {row.status}")
            if row.artifact_path is None or not Path(row.artifact_path).is_dir():
                raise LearnopsError(f"cannot deploy {model_type} {version}: artifacts missing")
            if row.status == "deployed":
                return VersionInfo.of(row)
            for cur in s.scalars(
                select(ModelVersion).where(
                    ModelVersion.model_type == model_type, ModelVersion.status == "deployed"
                )
            ):
                cur.status = "archived"
            s.flush()
            row.status = "deployed"
            row.deployed_at = utcnow()
            info = VersionInfo.of(row)
        self._write_pointer(model_type)
        return info

    def rollback(self, model_type: str) -> VersionInfo:
        """Redeploy the version that was production before the current one."""
        _check_type(model_type)
        current = self.production(model_type)
        candidates = [
            v
            for v in self.list(model_type)
            if v.status == "archived"
            and v.deployed_at is not None
            and (current is None or v.number != current.number)
        ]
        if current is not None:
            candidates = [v for v in candidates if v.deployed_at <= current.deployed_at]
        if not candidates:
            raise LearnopsError(f"no previous {model_type} production version to roll back to")
        previous = max(candidates, key=lambda v: v.deployed_at)
        return self.deploy(model_type, previous.version)

    def _write_pointer(self, model_type: str) -> None:
        """A convenience copy of the production record at root/<type>/production.json."""
        prod = self.production(model_type)
        if prod is not None:
            write_json(self.root / model_type / "production.json", prod.as_dict())

    def _row(self, s: Any, model_type: str, version: str) -> ModelVersion:
        _check_type(model_type)
        row = s.scalars(
            select(ModelVersion).where(
                ModelVersion.model_type == model_type, ModelVersion.version == version
            )
        ).first()
        if row is None:
            known = ", ".join(v.version for v in self.list(model_type)) or "none"
            raise LearnopsError(f"unknown {model_type} version {version!r} (known: {known})")
        return row

    # -- lock ----------------------------------------------------------------------------------
    # On PostgreSQL the lock is a session advisory lock (``pg_try_advisory_lock``) held on one
    # connection for the whole retrain: every process and replica on the database contends for
    # it, and the server drops it when the holder's connection ends (its process died).
    # ``is_training`` reads ``pg_locks`` and takes no lock.
    # On SQLite (one machine) it is two files next to the artifacts: ``.retrain.lock`` decides
    # who trains (flock LOCK_EX|LOCK_NB, the only lock a retrain contends for); its holder also
    # holds ``.retrain.busy`` exclusively, which status readers probe with a shared lock.
    # Readers never touch ``.retrain.lock``, so polling the status cannot make a retrain refuse;
    # the kernel drops both locks when a holder dies.
    @property
    def _pg(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    @contextmanager
    def training_lock(self) -> Iterator[None]:
        """Hold the retrain lock; a second holder, in this process or any other (on PostgreSQL:
        any process on the database), gets 'Training already in progress'."""
        if self._pg:
            with self._pg_training_lock():
                yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / ".retrain.lock", "a+")  # noqa: SIM115 (held for the block)
        busy = None
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TrainingInProgress() from None
            busy = open(self.root / ".retrain.busy", "a+")  # noqa: SIM115
            _flock_busy(busy)
            yield
        finally:
            if busy is not None:
                busy.close()
            fh.close()

    @contextmanager
    def _pg_training_lock(self) -> Iterator[None]:
        """The PostgreSQL advisory lock on one dedicated connection (closed, not pooled, after:
        a session lock must not outlive the block on a reused connection)."""
        conn = self.store.engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": LOCK_CLASS, "b": LOCK_RETRAIN}
            ).scalar_one()
            conn.commit()
            if not got:
                raise TrainingInProgress()
            try:
                yield
            finally:
                try:
                    conn.rollback()
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": LOCK_CLASS, "b": LOCK_RETRAIN},
                    )
                    conn.commit()
                except Exception as exc:  # the connection is gone: so is the lock
                    log.warning("retrain lock not released explicitly: %s", exc)
        finally:
            conn.invalidate()  # never back to the pool: the lock dies with the connection
            conn.close()

    def is_training(self) -> bool:
        """True while a retrain (in any process) holds the retrain lock. Takes no lock a
        retrain waits for: a shared probe of ``.retrain.busy``, or ``pg_locks`` on PostgreSQL."""
        if self._pg:
            with self.store.engine.connect() as conn:
                return bool(
                    conn.execute(
                        text(
                            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                            "AND granted AND classid = :a AND objid = :b AND objsubid = 2 "
                            "AND database = (SELECT oid FROM pg_database "
                            "WHERE datname = current_database()))"
                        ),
                        {"a": LOCK_CLASS, "b": LOCK_RETRAIN},
                    ).scalar_one()
                )
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".retrain.busy", "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False


def _flock_busy(fh: Any, timeout: float = 5.0) -> None:
    """Take ``.retrain.busy`` exclusively: status readers hold it shared for microseconds, so
    this waits at most briefly; past ``timeout`` the retrain goes on (status may then show it
    as not training) rather than wait on readers."""
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= end:
                log.warning("retrain lock taken, but status readers kept %s busy", fh.name)
                return
            time.sleep(0.001)


def _check_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise LearnopsError(f"unknown model type {model_type!r}: use {', '.join(MODEL_TYPES)}")
