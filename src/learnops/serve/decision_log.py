"""Durable decision logging: every decision is appended to a local journal and fsync'd before
``/decide`` answers, then a background thread copies the journal into the event store in
batches, so a request never waits for the database and a crash (kill -9) loses no answered
decision.

The journal is a directory of JSON-lines segments (one decision a line), next to a SQLite event
store (``<db file>.journal/``) or where env ``LEARNOPS_DECISION_JOURNAL`` points. Fsyncs are
grouped: the rows written while one fdatasync runs share the next one. A segment is deleted only
once every row in it is confirmed in the store. Segments left by a process that died (their
``flock`` is free) are replayed into the store at start; the insert skips decision ids the store
already holds, so a replay is idempotent. A locked or unreachable store is retried with backoff
for as long as the process lives; its rows stay in the journal meanwhile, each failed batch is
counted by ``on_error`` and logged.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from learnops.data.store import ABAssignment, Decision, EventStore
from learnops.data.store import decision_row as store_decision_row

__all__ = ["FSYNC_ENV", "JOURNAL_ENV", "DecisionLog", "decision_row", "journal_dir"]

log = logging.getLogger("learnops.serve")

#: Env variable naming the journal directory (default: next to a SQLite event store).
JOURNAL_ENV = "LEARNOPS_DECISION_JOURNAL"
#: Env variable: ``0`` skips the fsync (a row then survives the death of the process, kill -9
#: included, but not a crash of the machine); any other value or unset: fsync every row.
FSYNC_ENV = "LEARNOPS_DECISION_JOURNAL_FSYNC"
_WRITTEN: Future[None] = Future()  # "in the journal, no fsync asked for"
_WRITTEN.set_result(None)
_PREFIX, _SUFFIX = "decisions-", ".jsonl"
_MAX_BACKOFF_S = 5.0


def decision_row(
    learner_id: str,
    features: Mapping[str, float],
    decision: Mapping[str, Any],
    hashed: bool = False,
) -> dict[str, Any]:
    """One decision in the store's row format (the learner id hashed unless ``hashed``, the
    timestamp now)."""
    return store_decision_row(learner_id, features, decision, hashed=hashed)


def _assign(s: Any, rows: list[dict[str, Any]]) -> None:
    """Record in ``ab_assignments`` the experiment arm of each learner seen for the first time
    (the earliest of its rows); a concurrent writer's duplicate fails the batch, which is then
    retried and finds the row."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["timestamp"]):
        if r.get("ab_test") and r.get("ab_group"):
            first.setdefault((r["ab_test"], r["learner_hash"]), r)
    by_test: dict[str, list[str]] = {}
    for test, lhash in first:
        by_test.setdefault(test, []).append(lhash)
    for test, hashes in by_test.items():
        have = set(
            s.execute(
                select(ABAssignment.learner_hash).where(
                    ABAssignment.test_name == test, ABAssignment.learner_hash.in_(hashes)
                )
            ).scalars()
        )
        todo = [
            {
                "test_name": test,
                "learner_hash": h,
                "group": first[(test, h)]["ab_group"],
                "assigned_at": first[(test, h)]["timestamp"],
            }
            for h in hashes
            if h not in have
        ]
        if todo:
            s.execute(insert(ABAssignment.__table__), todo)


def journal_dir(db_url: str, root: Path | str = ".") -> Path:
    """Where the decision journal lives: env ``LEARNOPS_DECISION_JOURNAL``, else
    ``<db file>.journal`` next to a SQLite store, else ``<root>/data/decision-journal``."""
    env = os.environ.get(JOURNAL_ENV)
    if env:
        return Path(env)
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and db_url[len(prefix) :] not in ("", ":memory:"):
        db = Path(db_url[len(prefix) :])
        return db.with_name(db.name + ".journal")
    return Path(root) / "data" / "decision-journal"


def _encode(row: Mapping[str, Any]) -> bytes:
    return (json.dumps(row, default=_default, separators=(",", ":")) + "\n").encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")


def _decode(line: bytes) -> dict[str, Any] | None:
    """A journaled row (None for a torn or corrupt line: it was never acknowledged)."""
    try:
        row = json.loads(line)
        row["timestamp"] = datetime.fromisoformat(row["timestamp"])
        return row if isinstance(row.get("decision_id"), str) else None
    except (ValueError, TypeError, KeyError):
        return None


class _Segment:
    """One journal file this process appends to (locked while it is open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # created under a hidden name and locked before it is renamed into the journal: a
        # process replaying the segments of dead ones (its siblings sharing the directory)
        # never sees a live segment unlocked
        hidden = path.with_name("." + path.name)
        self.fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, path)
        self.size = 0
        self.sealed = False  # rotated: nothing more is appended


class DecisionLog:
    """The journal of decisions and the thread that stores them in batches.

    ``submit`` (or ``await submit_async``) returns once the row is fsync'd in the journal. The
    store writer collects rows for up to ``linger`` seconds (fewer, larger transactions); a batch
    that fails is retried with backoff until it is stored (or the log is closed: the rows then
    stay in the journal for the next start). Without ``directory`` there is no journal: rows go
    to the store synchronously. ``fsync=False`` (default: env ``LEARNOPS_DECISION_JOURNAL_FSYNC``
    is not ``0``) only writes each row to the journal file before answering.
    """

    def __init__(
        self,
        store: EventStore,
        directory: Path | str | None = None,
        max_batch: int = 500,
        linger: float = 0.02,
        max_segment_bytes: int = 4 << 20,
        on_error: Callable[[int], None] | None = None,
        fsync: bool | None = None,
    ) -> None:
        self.store = store
        self.fsync = fsync if fsync is not None else os.environ.get(FSYNC_ENV, "1") != "0"
        self.max_batch = max_batch
        self.linger = linger
        self.max_segment_bytes = max_segment_bytes
        self.directory = Path(directory) if directory is not None else None
        self._on_error = on_error
        self._cond = threading.Condition()
        self._sync_lock = threading.Lock()  # an fsync vs closing a segment's fd
        self._waiting: list[Future[None]] = []  # appended rows waiting for their fsync
        self._segments: list[_Segment] = []  # own segments not yet confirmed, oldest first
        self._submitted = 0
        self._done = 0
        self._backlog = 0  # rows of replayed segments still to store
        self._replayed = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        if self.directory is None:
            self._replayed = True
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        orphans = sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"))
        self._segments.append(self._new_segment())
        for target, name in ((self._sync_work, "decision-journal"), (self._work, "decision-log")):
            self._threads.append(threading.Thread(target=target, name=name, daemon=True))
        self._orphans = orphans
        for t in self._threads:
            t.start()

    # -- appending -----------------------------------------------------------------------------
    def submit(self, row: dict[str, Any]) -> None:
        """Journal one row and wait for its fsync (the store gets it in the background);
        without a journal, or when the journal fails, the row is stored at once."""
        try:
            fut = self._append(row)
            if fut is not None:
                fut.result()
                return
        except OSError as exc:
            self._journal_failed(exc)
        self._write([row])

    async def submit_async(self, row: dict[str, Any]) -> None:
        """``submit`` for the event loop: the fsync runs on the journal thread, shared by the
        requests that arrive meanwhile (group commit), and the loop stays free."""
        try:
            fut = self._append(row)
            if fut is _WRITTEN:
                return
            if fut is not None:
                await asyncio.wrap_future(fut)
                return
        except OSError as exc:
            self._journal_failed(exc)
        await asyncio.to_thread(self._write, [row])

    def _journal_failed(self, exc: OSError) -> None:
        log.error("decision journal write failed (%s): storing the decision directly", exc)
        if self._on_error is not None:
            self._on_error(1)

    def _append(self, row: Mapping[str, Any]) -> Future[None] | None:
        """Write the row to the current segment; the future resolves after its fdatasync (None
        when there is no journal or the log is closed)."""
        if self.directory is None:
            return None
        line = _encode(row)
        fut: Future[None] = Future()
        with self._cond:
            if self._closed:
                return None
            seg = self._segments[-1]
            if seg.size >= self.max_segment_bytes:
                seg = self._rotate(seg)
            os.write(seg.fd, line)
            seg.size += len(line)
            self._submitted += 1
            if not self.fsync:
                self._cond.notify_all()
                return _WRITTEN
            self._waiting.append(fut)
            self._cond.notify_all()
        return fut

    def _sync_work(self) -> None:
        """Group fsync: every row written before an fdatasync starts is acknowledged by it."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
                seg = self._segments[-1] if self._segments else None
            try:
                with self._sync_lock:
                    if seg is None or seg.fd < 0:  # released: its rows are stored or kept
                        raise OSError("decision journal closed")
                    os.fdatasync(seg.fd)
            except OSError as exc:
                for f in batch:
                    f.set_exception(exc)
            else:
                for f in batch:
                    f.set_result(None)

    def _new_segment(self) -> _Segment:
        if self.directory is None:
            raise RuntimeError("the decision journal has no directory")
        name = f"{_PREFIX}{time.time_ns():020d}-{os.getpid()}{_SUFFIX}"
        return _Segment(self.directory / name)

    def _rotate(self, seg: _Segment) -> _Segment:
        """Seal ``seg`` (fsync'd now: the journal thread syncs only the newest segment)."""
        with self._sync_lock:
            os.fsync(seg.fd)
        seg.sealed = True
        new = self._new_segment()
        self._segments.append(new)
        return new

    # -- state ---------------------------------------------------------------------------------
    def backlog(self) -> int:
        """Rows journaled but not yet confirmed in the store."""
        with self._cond:
            return self._submitted - self._done + self._backlog

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row submitted so far (and every replayed one) is in the store;
        False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(
                lambda: self._done >= target and self._replayed, timeout=timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Store what is journaled (what the store refuses stays in the journal for the next
        start) and stop the threads."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=timeout)

    # -- storing -------------------------------------------------------------------------------
    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Insert the rows whose decision id the store does not hold yet (idempotent)."""
        with self.store.session() as s:
            ids = [r["decision_id"] for r in rows]
            have = set(
                s.execute(select(Decision.decision_id).where(Decision.decision_id.in_(ids)))
                .scalars()
                .all()
            )
            new = [r for r in rows if r["decision_id"] not in have]
            if new:
                s.execute(insert(Decision.__table__), new)
                _assign(s, new)

    def _store(self, rows: list[dict[str, Any]]) -> bool:
        """Store a batch, retrying with backoff; False when the log closed before it could."""
        delay, attempt = 0.05, 0
        while True:
            try:
                self._write(rows)
                if attempt:
                    log.warning("stored %d delayed decision(s), %d retries", len(rows), attempt)
                return True
            except Exception as exc:
                attempt += 1
                if attempt == 1:
                    log.error(
                        "could not store %d decision(s), kept in the journal, retrying: %s",
                        len(rows),
                        type(exc).__name__,
                    )
                    if self._on_error is not None:
                        self._on_error(len(rows))
                with self._cond:
                    if self._cond.wait_for(lambda: self._closed, timeout=delay):
                        return False
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _replay(self) -> bool:
        """Store the segments of dead processes, then delete them; False when interrupted."""
        for path in self._orphans:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                with open(fd, "rb", closefd=False) as f:
                    rows = [r for r in map(_decode, f.read().split(b"\n")) if r is not None]
                with self._cond:
                    self._backlog += len(rows)
                for i in range(0, len(rows), self.max_batch):
                    batch = rows[i : i + self.max_batch]
                    if not self._store(batch):
                        return False
                    with self._cond:
                        self._backlog -= len(batch)
                        self._cond.notify_all()
                if rows:
                    log.info("replayed %d journaled decision(s) from %s", len(rows), path.name)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return True

    def _work(self) -> None:
        try:
            ok = self._replay()
            with self._cond:
                self._replayed = True
                self._backlog = 0 if ok else self._backlog
                self._cond.notify_all()
            if ok:
                self._tail()
        except Exception as exc:  # never lose the thread silently: the rows stay in the journal
            # the type only: a database error's text can carry the rows' values (learner hashes)
            log.error("decision log writer stopped (%s); decisions stay in the journal",
                      type(exc).__name__)  # fmt: skip
        finally:
            self._release()

    def _tail(self) -> None:
        """Copy the own segments into the store as they grow; delete each once confirmed."""
        pending = b""
        seg = self._segments[0]
        f = open(seg.path, "rb")  # noqa: SIM115 - follows the segment across iterations
        try:
            while True:
                with self._cond:
                    sealed, closed = seg.sealed, self._closed
                chunk = f.read(self.max_batch * 2048)
                if not chunk:
                    if sealed:
                        pending = b""  # a torn last line was never acknowledged
                        f.close()
                        with self._cond:
                            self._segments.pop(0)
                            nxt = self._segments[0]
                        self._drop(seg)
                        seg = nxt
                        f = open(seg.path, "rb")  # noqa: SIM115
                        continue
                    if closed:
                        with self._cond:  # no append after close: this is the end
                            if os.fstat(f.fileno()).st_size == f.tell():
                                break
                        continue
                    with self._cond:
                        self._cond.wait(timeout=0.5)
                    continue
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    pending = data
                    continue
                if len(chunk) < self.max_batch * 2048 and not closed and self.linger > 0:
                    time.sleep(self.linger)  # let a batch fill up
                    more = f.read(self.max_batch * 2048)
                    data += more
                    cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                lines = data[:cut].split(b"\n")[:-1]
                rows = [r for r in map(_decode, lines) if r is not None]
                for i in range(0, len(rows), self.max_batch):
                    if not self._store(rows[i : i + self.max_batch]):
                        return
                with self._cond:
                    self._done += len(lines)
                    self._cond.notify_all()
            # closed with everything stored: the journal is no longer needed
            f.close()
            with self._cond:
                segs, self._segments = self._segments, []
            for s in segs:
                self._drop(s)
        finally:
            if not f.closed:
                f.close()

    def _drop(self, seg: _Segment) -> None:
        with self._sync_lock:
            os.close(seg.fd)
            seg.fd = -1
        seg.path.unlink(missing_ok=True)

    def _release(self) -> None:
        """Release the segments that are kept (their rows are replayed at the next start)."""
        with self._cond:
            self._closed = True
            segs, self._segments = self._segments, []
            self._cond.notify_all()
        with self._sync_lock:
            for s in segs:
                if s.fd >= 0:
                    os.close(s.fd)
                    s.fd = -1
