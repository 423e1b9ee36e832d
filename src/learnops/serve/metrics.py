"""In-process serving metrics rendered in the Prometheus text exposition format."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

__all__ = ["LATENCY_BUCKETS_MS", "ServeMetrics"]

#: Upper bounds (ms) of the decision-latency histogram buckets.
LATENCY_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
_QUANTILES = (0.5, 0.95, 0.99)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(x: float) -> str:
    return repr(float(x)) if np.isfinite(x) else ("+Inf" if x > 0 else "NaN")


class ServeMetrics:
    """Counters, a latency histogram and recent-latency quantiles (thread-safe)."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[tuple[str, str]] = Counter()  # (decided_by, action)
        self.low_confidence = 0
        self.outcomes = 0
        self.errors: Counter[str] = Counter()
        self.reloads = 0
        self.arms: Counter[tuple[str, str, bool]] = Counter()  # (experiment, arm, explored)
        self.arm_mismatch: Counter[str] = Counter()  # experiment: client claimed another arm
        self._buckets = [0] * len(LATENCY_BUCKETS_MS)
        self._lat_sum = 0.0
        self._lat_count = 0
        self._recent: deque[float] = deque(maxlen=window)
        self._recent_by: dict[str, deque[float]] = {}
        self._window = window

    def observe_decision(
        self, decided_by: str, action: str, latency_ms: float, low_confidence: bool
    ) -> None:
        """Count one decision and its latency."""
        with self._lock:
            self.decisions[(decided_by, action)] += 1
            self.low_confidence += int(low_confidence)
            for i, ub in enumerate(LATENCY_BUCKETS_MS):
                if latency_ms <= ub:
                    self._buckets[i] += 1
                    break
            self._lat_sum += latency_ms
            self._lat_count += 1
            self._recent.append(latency_ms)
            self._recent_by.setdefault(decided_by, deque(maxlen=self._window)).append(latency_ms)

    def observe_arm(self, experiment: str | None, arm: str, explored: bool) -> None:
        """Count a decision served under ``arm`` of ``experiment`` (None: no experiment)."""
        with self._lock:
            self.arms[(experiment or "none", arm, explored)] += 1

    def observe_arm_mismatch(self, experiment: str | None) -> None:
        """Count a request whose client-sent ab_test/ab_group disagreed with the server's."""
        with self._lock:
            self.arm_mismatch[experiment or "none"] += 1

    def observe_outcome(self) -> None:
        with self._lock:
            self.outcomes += 1

    def observe_error(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.errors[kind] += n

    def observe_reload(self) -> None:
        with self._lock:
            self.reloads += 1

    def ml_usage(self) -> float:
        """Share of decisions taken by the model since start (NaN before the first decision)."""
        with self._lock:
            total = sum(self.decisions.values())
            ml = sum(n for (by, _), n in self.decisions.items() if by == "ml")
        return ml / total if total else float("nan")

    def render(
        self,
        model_versions: dict[str, str | None],
        training: bool,
        threshold: float,
    ) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            decisions = dict(self.decisions)
            buckets = list(self._buckets)
            lat_sum, lat_count = self._lat_sum, self._lat_count
            recent = np.asarray(self._recent, dtype=float)
            recent_by = {k: np.asarray(v, dtype=float) for k, v in self._recent_by.items()}
            low, outcomes, errors, reloads = (
                self.low_confidence,
                self.outcomes,
                dict(self.errors),
                self.reloads,
            )
            arms, mismatch = dict(self.arms), dict(self.arm_mismatch)
        lines: list[str] = []
        _decision_lines(lines, decisions, low, threshold)
        _arm_lines(lines, arms, mismatch)
        _latency_lines(lines, buckets, lat_sum, lat_count)
        _recent_lines(lines, [("all", recent), *sorted(recent_by.items())], self._window)
        _head(lines, "learnops_outcomes_total", "counter", "Outcomes recorded.")
        lines.append(f"learnops_outcomes_total {outcomes}")
        _head(lines, "learnops_errors_total", "counter", "Failed requests, by kind.")
        for kind, n in sorted(errors.items()):
            lines.append(f'learnops_errors_total{{kind="{_esc(kind)}"}} {n}')
        _head(lines, "learnops_model_reloads_total", "counter", "Hot swaps of the served model.")
        lines.append(f"learnops_model_reloads_total {reloads}")
        _head(
            lines,
            "learnops_model_info",
            "gauge",
            "The model version being served (1) per model type; version none = fallback only.",
        )
        for model_type, version in sorted(model_versions.items()):
            lines.append(
                f'learnops_model_info{{model="{_esc(model_type)}",'
                f'version="{_esc(version or "none")}"}} 1'
            )
        _head(lines, "learnops_training_in_progress", "gauge", "1 while a retrain runs.")
        lines.append(f"learnops_training_in_progress {int(training)}")
        return "\n".join(lines) + "\n"


def _head(lines: list[str], name: str, kind: str, text: str) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def _decision_lines(
    lines: list[str], decisions: dict[tuple[str, str], int], low: int, threshold: float
) -> None:
    """Decision counters, the model's usage share, low-confidence count and threshold."""
    _head(lines, "learnops_decisions_total", "counter", "Decisions served, by decider and action.")
    for by in ("ml", "llm"):
        if not any(k[0] == by for k in decisions):
            lines.append(f'learnops_decisions_total{{decided_by="{by}",action="none"}} 0')
    for (by, action), n in sorted(decisions.items()):
        lines.append(
            f'learnops_decisions_total{{decided_by="{_esc(by)}",action="{_esc(action)}"}} {n}'
        )
    total = sum(decisions.values())
    ml = sum(n for (by, _), n in decisions.items() if by == "ml")
    _head(lines, "learnops_ml_usage_ratio", "gauge", "Share of decisions taken by the model.")
    lines.append(f"learnops_ml_usage_ratio {_num(ml / total if total else float('nan'))}")
    _head(
        lines,
        "learnops_low_confidence_total",
        "counter",
        "Decisions sent to the fallback because the model was below the threshold.",
    )
    lines.append(f"learnops_low_confidence_total {low}")
    _head(lines, "learnops_confidence_threshold", "gauge", "Confidence threshold of the model.")
    lines.append(f"learnops_confidence_threshold {_num(threshold)}")


def _arm_lines(
    lines: list[str], arms: dict[tuple[str, str, bool], int], mismatch: dict[str, int]
) -> None:
    """Decisions per experiment arm (and whether explored); client arm claims overruled."""
    _head(
        lines,
        "learnops_arm_decisions_total",
        "counter",
        "Decisions served, by experiment (none: default policy), arm and exploration.",
    )
    for (exp, arm, explored), n in sorted(arms.items()):
        lines.append(
            f'learnops_arm_decisions_total{{experiment="{_esc(exp)}",arm="{_esc(arm)}",'
            f'explored="{str(explored).lower()}"}} {n}'
        )
    _head(
        lines,
        "learnops_ab_client_arm_mismatch_total",
        "counter",
        "Requests whose client-sent ab_test/ab_group differed from the server's assignment "
        "(the server's arm was served).",
    )
    if not mismatch:
        lines.append('learnops_ab_client_arm_mismatch_total{experiment="none"} 0')
    for exp, n in sorted(mismatch.items()):
        lines.append(f'learnops_ab_client_arm_mismatch_total{{experiment="{_esc(exp)}"}} {n}')


def _latency_lines(lines: list[str], buckets: list[int], lat_sum: float, lat_count: int) -> None:
    """The cumulative decision-latency histogram."""
    _head(
        lines,
        "learnops_decision_latency_ms",
        "histogram",
        "Decision latency in milliseconds (model or fallback, excluding logging).",
    )
    cum = 0
    for ub, n in zip(LATENCY_BUCKETS_MS, buckets, strict=True):
        cum += n
        lines.append(f'learnops_decision_latency_ms_bucket{{le="{_num(ub)}"}} {cum}')
    lines.append(f'learnops_decision_latency_ms_bucket{{le="+Inf"}} {lat_count}')
    lines.append(f"learnops_decision_latency_ms_sum {_num(lat_sum)}")
    lines.append(f"learnops_decision_latency_ms_count {lat_count}")


def _recent_lines(lines: list[str], series: list[tuple[str, np.ndarray]], window: int) -> None:
    """Recent-latency quantiles, sum and count per decider (``all`` first)."""
    _head(
        lines,
        "learnops_decision_latency_recent_ms",
        "summary",
        f"Latency quantiles over the last {window} decisions, by decider.",
    )
    for by, values in series:
        for q in _QUANTILES:
            v = float(np.quantile(values, q)) if len(values) else float("nan")
            lines.append(
                f'learnops_decision_latency_recent_ms{{decided_by="{_esc(by)}",'
                f'quantile="{q}"}} {_num(v)}'
            )
        lines.append(
            f'learnops_decision_latency_recent_ms_sum{{decided_by="{_esc(by)}"}} '
            f"{_num(float(values.sum()))}"
        )
        n = len(values)
        lines.append(f'learnops_decision_latency_recent_ms_count{{decided_by="{_esc(by)}"}} {n}')
