"""Request and response bodies of the HTTP API (pydantic, with the feature ranges).

Requests are strict: a feature is a JSON number (not ``"0.5"`` or ``true``), a flag is a JSON
boolean (not ``"yes"`` or ``1``), and text (ids, A/B arms) is neither blank nor holds control
characters or lone surrogates. NaN and infinities are refused.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from learnops.contracts import ACTIONS, FEATURES

__all__ = [
    "FEATURE_RANGES",
    "AbilityResponse",
    "DecideRequest",
    "DecideResponse",
    "ExplanationItem",
    "OutcomeRequest",
    "RetrainRequest",
    "Text",
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
assert tuple(FEATURE_RANGES) == FEATURES  # nosec B101 (an import-time invariant)

#: Unicode categories refused in request text: control characters, lone surrogates, line and
#: paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _clean_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


#: Request text: a JSON string, not blank, without control characters or lone surrogates.
Text = Annotated[str, AfterValidator(_clean_text)]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

_Features = create_model(  # type: ignore[call-overload]
    "_Features",
    __config__=_STRICT,
    **{f: (float, Field(ge=lo, le=hi)) for f, (lo, hi) in FEATURE_RANGES.items()},
)


class DecideRequest(_Features):  # type: ignore[misc, valid-type]
    """The 18 features of the learner's situation and the learner id. ``ab_test``/``ab_group``
    are accepted for older clients but never change the arm: the server assigns it."""

    learner_id: Text = Field(min_length=1, max_length=256)
    ab_test: Text | None = Field(None, max_length=64)
    ab_group: Text | None = Field(None, max_length=32)

    def features(self) -> dict[str, float]:
        """The 18 features as a plain dict."""
        return {f: getattr(self, f) for f in FEATURES}


class ExplanationItem(BaseModel):
    """One feature's integrated-gradients attribution to the answered action's model logit."""

    feature: str
    value: float = Field(description="The feature as sent (raw units).")
    attribution: float = Field(
        description="Its share of logit(features) − logit(training means), in logits."
    )


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
    ab_test: str | None = Field(
        None, description="The running experiment (assigned by the server), or null."
    )
    ab_group: str | None = Field(
        None, description="The learner's arm in ab_test (ml, gpt4 or hybrid), or null."
    )
    propensity: float = Field(
        description="Probability the logging policy gave the served action (exploration included)."
    )
    explored: bool = Field(description="The action was drawn uniformly (epsilon exploration).")
    explanation: list[ExplanationItem] | None = Field(
        None,
        description="With ?explain=true only: the top features behind the model's logit of the "
        "answered action, largest |attribution| first (null without a model).",
    )


class AbilityResponse(BaseModel):
    """A learner's current ability from the production learner model (``irt.ability_model``):
    the ``ability``/``ability_se`` a ``/decide`` client sends."""

    model_config = ConfigDict(populate_by_name=True)

    ability: float = Field(description="θ scale; the model's prior for a learner with no answer.")
    ability_se: float
    model: str = Field(description="The learner model: irt, elo or best_lr.")
    version: str | None = Field(
        description="The production learner version, or null (none deployed: the prior)."
    )
    as_of: str = Field(alias="asOf", description="ISO time; answers strictly before it count.")
    n_responses: int = Field(alias="nResponses", description="The learner's answers used.")
    note: str | None = Field(None, description="Why the answer is the prior, or what was left out.")


class OutcomeRequest(BaseModel):
    """The observed outcome of a logged decision."""

    model_config = _STRICT

    decision_id: Text = Field(min_length=1, max_length=64)
    next_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    next_engagement: float | None = Field(None, ge=0.0, le=1.0)
    session_completed: bool | None = None
    total_session_time_ms: float | None = Field(None, ge=0.0)

    @model_validator(mode="after")
    def _some_outcome(self) -> OutcomeRequest:
        """An outcome without values is refused here (a 422 in the validation-error shape)."""
        if all(v is None for v in self.model_dump(exclude={"decision_id"}).values()):
            fields = ", ".join(f for f in type(self).model_fields if f != "decision_id")
            raise ValueError(f"an outcome needs at least one of {fields}")
        return self

    def outcome(self) -> dict[str, Any]:
        """The outcome fields that were given."""
        return self.model_dump(exclude={"decision_id"}, exclude_unset=True)


class RetrainRequest(BaseModel):
    """Options of an API-triggered retrain (camelCase like the seed's admin API)."""

    model_config = ConfigDict(**_STRICT, populate_by_name=True)

    limit: int | None = Field(None, ge=1)
    auto_deploy: bool = Field(True, alias="autoDeploy")
    since: date | None = Field(None, strict=False)  # an ISO date string, as JSON has no dates
