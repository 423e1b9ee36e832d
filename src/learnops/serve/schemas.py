"""Request and response bodies of the HTTP API (pydantic, with the feature ranges)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from learnops.contracts import ACTIONS, FEATURES

__all__ = [
    "FEATURE_RANGES",
    "DecideRequest",
    "DecideResponse",
    "OutcomeRequest",
    "RetrainRequest",
]

_BIG = 1e6
#: (min, max) accepted for each feature; the contract's ranges, generous finite bounds elsewhere.
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "recent_accuracy": (0.0, 1.0),
    "accuracy_trend": (-1.0, 1.0),
    "avg_response_time_s": (0.0, 86_400.0),
    "response_time_trend": (-86_400.0, 86_400.0),
    "consecutive_errors": (0.0, 10_000.0),
    "consecutive_correct": (0.0, 10_000.0),
    "hint_rate": (0.0, 1.0),
    "current_difficulty": (-100.0, 100.0),
    "session_minutes": (0.0, 1_440.0),
    "minutes_since_break": (0.0, 1_440.0),
    "items_in_session": (0.0, 100_000.0),
    "engagement": (0.0, 1.0),
    "hour_of_day": (0.0, 23.0),
    "ability": (-100.0, 100.0),
    "ability_se": (0.0, 100.0),
    "learning_velocity": (-100.0, 100.0),
    "sessions_completed": (0.0, _BIG),
    "days_since_last_session": (0.0, 36_500.0),
}
assert tuple(FEATURE_RANGES) == FEATURES

_Features = create_model(  # type: ignore[call-overload]
    "_Features",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    **{f: (float, Field(ge=lo, le=hi)) for f, (lo, hi) in FEATURE_RANGES.items()},
)


class DecideRequest(_Features):  # type: ignore[misc, valid-type]
    """The 18 features of the learner's situation, the learner id and the optional A/B arm."""

    learner_id: str = Field(min_length=1, max_length=256)
    ab_test: str | None = Field(None, max_length=64)
    ab_group: str | None = Field(None, max_length=32)

    def features(self) -> dict[str, float]:
        """The 18 features as a plain dict."""
        return {f: getattr(self, f) for f in FEATURES}


class DecideResponse(BaseModel):
    """The decision; ``decided_by`` is ``ml`` (the production model) or ``llm`` (the fallback)."""

    action: str = Field(json_schema_extra={"enum": list(ACTIONS)})
    confidence: float
    decided_by: str
    latency_ms: float
    model_version: str | None
    decision_id: str
    probabilities: dict[str, float]
    difficulty_delta: float | None = None


class OutcomeRequest(BaseModel):
    """The observed outcome of a logged decision."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    decision_id: str = Field(min_length=1, max_length=64)
    next_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    next_engagement: float | None = Field(None, ge=0.0, le=1.0)
    session_completed: bool | None = None
    total_session_time_ms: float | None = Field(None, ge=0.0)

    def outcome(self) -> dict[str, Any]:
        """The outcome fields that were given."""
        return self.model_dump(exclude={"decision_id"}, exclude_unset=True)


class RetrainRequest(BaseModel):
    """Options of an API-triggered retrain (camelCase like the seed's admin API)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    limit: int | None = Field(None, ge=1)
    auto_deploy: bool = Field(True, alias="autoDeploy")
    since: date | None = None
