"""Feature drift of live traffic for ``/metrics``: the features of the most recent decisions
against the training data of the served model, by the same rule as ``learnops monitor drift``
and the monitoring report (``learnops.monitoring.drift``), recomputed in a background thread
every ``monitor.serve_interval_s`` seconds (never on the request path)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from learnops.config import Params
from learnops.contracts import FEATURES

__all__ = ["DriftWatch"]

log = logging.getLogger("learnops.serve")


class DriftWatch:
    """Recent decisions' features (a window of ``monitor.serve_window`` rows) and the last drift
    result against the reference table (the exported training decisions)."""

    def __init__(self, params: Params, reference_path: Path | None = None) -> None:
        self.params = params
        cfg = params.monitor
        self.window = int(cfg.serve_window)
        self.interval = float(cfg.serve_interval_s)
        self.reference_path = reference_path or (
            params.path(params.paths.processed_dir) / "decisions.parquet"
        )
        self._rows: deque[tuple[str, tuple[float, ...]]] = deque(maxlen=self.window)
        self._lock = threading.Lock()
        self._reference: Any = None
        self._reference_error: str | None = None
        self.gauges: list[tuple[str, float | None, bool]] = []
        self.status = "insufficient_data"
        self.n_current = 0
        self.result: Any = None  # the last DriftResult (the dashboard's per-feature table)
        self.tested_at: Any = None  # when it was computed (UTC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, learner_hash: str, features: Mapping[str, float]) -> None:
        """Remember one served decision's features (cheap: a tuple on a bounded deque)."""
        row = tuple(float(features[f]) for f in FEATURES)
        with self._lock:
            self._rows.append((learner_hash, row))

    def _load_reference(self) -> Any:
        if self._reference is None and self._reference_error is None:
            from learnops.io import read_table

            try:
                df = read_table(self.reference_path)
                cols = [c for c in ("learner_hash", *FEATURES) if c in df.columns]
                self._reference = df[cols].dropna()
            except Exception as exc:  # no export yet: no drift gauges, the server serves on
                self._reference_error = f"{type(exc).__name__}: {exc}"
                log.info("drift gauges off: no reference table (%s)", self._reference_error)
        return self._reference

    def compute(self) -> None:
        """Test the current window against the reference now (seconds on large tables)."""
        import pandas as pd

        from learnops.monitoring.drift import drift_from_params

        reference = self._load_reference()
        if reference is None:
            return
        with self._lock:
            rows = list(self._rows)
        current = pd.DataFrame([r for _, r in rows], columns=list(FEATURES))
        current.insert(0, "learner_hash", [h for h, _ in rows])
        result = drift_from_params(reference, current, self.params)
        self.gauges = result.gauges()
        self.status = str(getattr(result, "status", "ok"))
        self.n_current = len(current)
        from learnops.data.store import utcnow

        self.result, self.tested_at = result, utcnow()

    def start(self) -> None:
        """Recompute every ``interval`` seconds in a daemon thread until :meth:`close`."""

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.compute()
                except Exception as exc:  # a failed test run must not stop the watcher
                    log.warning("drift computation failed: %s", type(exc).__name__)

        self._thread = threading.Thread(target=loop, name="drift-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def render(self) -> list[str]:
        """Prometheus lines: per-feature p-value and verdict, the dataset verdict, the window."""
        lines = [
            "# HELP learnops_feature_drift_p_value Adjusted p-value of each feature's drift test "
            "(recent decisions vs the training data; same rule as learnops monitor drift).",
            "# TYPE learnops_feature_drift_p_value gauge",
        ]
        for feature, p, _ in self.gauges:
            if p is not None:
                lines.append(f'learnops_feature_drift_p_value{{feature="{feature}"}} {p!r}')
        lines += [
            "# HELP learnops_feature_drifted 1 when the feature's drift test rejects.",
            "# TYPE learnops_feature_drifted gauge",
        ]
        for feature, p, drifted in self.gauges:
            if p is not None:
                lines.append(f'learnops_feature_drifted{{feature="{feature}"}} {int(drifted)}')
        dataset = {"drift": 1, "ok": 0}.get(self.status, -1)
        lines += [
            "# HELP learnops_dataset_drift 1 drift, 0 none, -1 not tested (insufficient data "
            "or no reference table).",
            "# TYPE learnops_dataset_drift gauge",
            f"learnops_dataset_drift {dataset}",
            "# HELP learnops_drift_window_decisions Decisions in the last drift test's window.",
            "# TYPE learnops_drift_window_decisions gauge",
            f"learnops_drift_window_decisions {self.n_current}",
        ]
        return lines
