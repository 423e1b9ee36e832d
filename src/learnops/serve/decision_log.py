"""Decisions are written to the event store by a background thread in small batches, so a
request does not wait for the database; ``flush`` waits until everything queued is stored."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert

from learnops.data.store import Decision, EventStore
from learnops.data.store import decision_row as store_decision_row

__all__ = ["DecisionLog"]

log = logging.getLogger("learnops.serve")


def decision_row(
    learner_id: str, features: Mapping[str, float], decision: Mapping[str, Any]
) -> dict[str, Any]:
    """One decision in the store's row format (the learner id hashed, the timestamp now)."""
    return store_decision_row(learner_id, features, decision)


class DecisionLog:
    """A bounded queue of decision rows and the thread that stores them in batches.

    A batch collects rows for up to ``linger`` seconds after its first one (fewer, larger
    transactions). When the queue is full the caller writes its row itself (back-pressure,
    nothing dropped).
    A batch that fails is retried once, then reported to ``on_error`` and logged.
    """

    def __init__(
        self,
        store: EventStore,
        max_batch: int = 500,
        max_queue: int = 10_000,
        linger: float = 0.02,
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._on_error = on_error
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="decision-log", daemon=True)
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        """Queue one row (written synchronously if the queue is full or the log closed)."""
        if not self._closed:
            with self._cond:
                self._submitted += 1
            try:
                self._q.put_nowait(row)
                return
            except queue.Full:
                with self._cond:
                    self._submitted -= 1
        self._write([row])

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row submitted so far is stored (or failed); False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join(timeout=timeout)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.store.session() as s:
            s.execute(insert(Decision.__table__), rows)

    def _work(self) -> None:
        stop = False
        while not stop:
            item = self._q.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                wait = deadline - time.monotonic()
                try:
                    item = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._store_batch(batch)

    def _store_batch(self, batch: list[dict[str, Any]]) -> None:
        try:
            for attempt in range(2):
                try:
                    self._write(batch)
                    break
                except Exception as exc:
                    if attempt == 1:
                        log.error("could not store %d decision(s): %s", len(batch), exc)
                        if self._on_error is not None:
                            self._on_error(len(batch))
                    else:
                        time.sleep(0.2)
        finally:
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()
