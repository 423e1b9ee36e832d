"""Deterministic group assignment and the A/B test lifecycle (start → record → stop → result).

``assign_group`` lives in :mod:`learnops.hashing` (the simulator and the server use it too) and
is re-exported here.

Storage-agnostic: tests and results are plain dataclasses with ``to_record()`` dicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from learnops.errors import LearnopsError
from learnops.hashing import _normalized, assign_group, bucket  # noqa: F401 (re-exported)

DEFAULT_GROUPS: dict[str, float] = {"ml": 0.4, "gpt4": 0.4, "hybrid": 0.2}
DEFAULT_METRICS: tuple[str, ...] = ("accuracy", "engagement", "success")


def assign_groups(
    experiment: str, learner_hashes: Iterable[str], weights: Mapping[str, float]
) -> list[str]:
    """:func:`assign_group` for many learners."""
    return [assign_group(experiment, h, weights) for h in learner_hashes]


@dataclass
class ABTestResult:
    """The outcome of a stopped test: the analysis dict plus its headline fields."""

    test_name: str
    winner: str | None
    decision: str
    reason: str
    analysis: dict[str, Any]
    stopped_at: datetime

    def to_record(self) -> dict[str, Any]:
        """A flat dict for storage (e.g. the MLABTestResults table)."""
        return {
            "test_name": self.test_name,
            "winner": self.winner,
            "decision": self.decision,
            "reason": self.reason,
            "results": self.analysis,
            "stopped_at": self.stopped_at,
        }


@dataclass
class ABTest:
    """A running or stopped A/B test; record outcomes with :meth:`record`, finish with
    :meth:`stop`."""

    name: str
    description: str = ""
    groups: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    min_sample_size: int = 100
    metrics: tuple[str, ...] = DEFAULT_METRICS
    control: str = "gpt4"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stopped_at: datetime | None = None
    status: str = "running"
    events: list[dict[str, Any]] = field(default_factory=list)
    result: ABTestResult | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise LearnopsError("an A/B test needs a name")
        _normalized(self.groups)
        if self.control not in self.groups:
            raise LearnopsError(
                f"control group {self.control!r} not in groups ({', '.join(self.groups)})"
            )
        if self.min_sample_size < 1:
            raise LearnopsError("min_sample_size must be >= 1")
        self.metrics = tuple(self.metrics)

    def group_of(self, learner_hash: str) -> str:
        """The learner's deterministic group in this test."""
        return assign_group(self.name, learner_hash, self.groups)

    def record(
        self,
        learner_hash: str,
        values: Mapping[str, float],
        timestamp: datetime | None = None,
    ) -> str:
        """Record one observation (metric → value) for a learner; returns the learner's group."""
        if self.status != "running":
            raise LearnopsError(f"A/B test {self.name!r} is {self.status}; cannot record")
        unknown = sorted(set(values) - set(self.metrics))
        if unknown:
            raise LearnopsError(f"unknown metric(s) for {self.name!r}: {', '.join(unknown)}")
        group = self.group_of(learner_hash)
        self.events.append(
            {
                "learner_id": str(learner_hash),
                "group": group,
                "timestamp": timestamp or datetime.now(UTC),
                **{m: values.get(m, math.nan) for m in self.metrics},
            }
        )
        return group

    def stop(self, **analyze_kwargs: Any) -> ABTestResult:
        """Stop the test and analyze what was recorded (kwargs go to :func:`analyze`)."""
        import pandas as pd

        from learnops.ab.analysis import analyze

        if self.status != "running":
            raise LearnopsError(f"A/B test {self.name!r} is already {self.status}")
        if not self.events:
            raise LearnopsError(f"A/B test {self.name!r} has no recorded events")
        kwargs = {
            "control": self.control,
            "metrics": self.metrics,
            "min_sample_size": self.min_sample_size,
            "planned_split": self.groups,
            **analyze_kwargs,
        }
        analysis = analyze(pd.DataFrame(self.events), **kwargs)
        self.stopped_at = datetime.now(UTC)
        self.status = "stopped"
        self.result = ABTestResult(
            test_name=self.name,
            winner=analysis["winner"],
            decision=analysis["decision"],
            reason=analysis["reason"],
            analysis=analysis,
            stopped_at=self.stopped_at,
        )
        return self.result

    def to_record(self) -> dict[str, Any]:
        """A flat dict for storage (test definition, status and, once stopped, the result)."""
        return {
            "test_name": self.name,
            "description": self.description,
            "groups": dict(self.groups),
            "control": self.control,
            "min_sample_size": self.min_sample_size,
            "metrics": list(self.metrics),
            "status": self.status,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "n_events": len(self.events),
            "winner": self.result.winner if self.result else None,
            "decision": self.result.decision if self.result else None,
            "results": self.result.analysis if self.result else None,
        }


def start_test(
    name: str,
    description: str = "",
    groups: Mapping[str, float] | None = None,
    min_sample_size: int = 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
    control: str = "gpt4",
) -> ABTest:
    """Start a new A/B test (status "running")."""
    return ABTest(
        name=name,
        description=description,
        groups=dict(groups or DEFAULT_GROUPS),
        min_sample_size=min_sample_size,
        metrics=tuple(metrics),
        control=control,
    )
