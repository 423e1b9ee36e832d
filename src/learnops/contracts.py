"""Data contracts shared by every stage: the 18 features in order, the actions, table columns."""

from __future__ import annotations

PERFORMANCE_FEATURES: tuple[str, ...] = (
    "recent_accuracy",
    "accuracy_trend",
    "avg_response_time_s",
    "response_time_trend",
    "consecutive_errors",
    "consecutive_correct",
    "hint_rate",
)
SESSION_FEATURES: tuple[str, ...] = (
    "current_difficulty",
    "session_minutes",
    "minutes_since_break",
    "items_in_session",
    "engagement",
    "hour_of_day",
)
LEARNER_FEATURES: tuple[str, ...] = (
    "ability",
    "ability_se",
    "learning_velocity",
    "sessions_completed",
    "days_since_last_session",
)
#: The 18 decision-model features, in the fixed order the MLP consumes them.
FEATURES: tuple[str, ...] = PERFORMANCE_FEATURES + SESSION_FEATURES + LEARNER_FEATURES
assert len(FEATURES) == 18  # a static invariant, no security check  # nosec B101

#: The five teaching actions, in the fixed order of the model's output units.
ACTIONS: tuple[str, ...] = (
    "continue",
    "adjust_difficulty",
    "take_break",
    "provide_help",
    "change_activity",
)
DECIDERS: tuple[str, ...] = ("ml", "llm", "rule")
#: The logging policy's probability of each action, one column per action (ACTIONS order).
LOGGING_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{a}" for a in ACTIONS)
#: The arms of a decision-policy experiment: the model always, the fallback teacher always, and
#: the model when confident else the teacher (the default policy when no experiment runs).
ARMS: tuple[str, ...] = ("ml", "gpt4", "hybrid")
DEFAULT_ARM = "hybrid"

#: What the agent records about a decision besides its features (all but ``action`` nullable).
DECISION_META: tuple[str, ...] = (
    "action",
    "decided_by",
    "confidence",
    "propensity",
    *LOGGING_PROB_COLUMNS,
    "explored",
    "latency_ms",
    "model_version",
    "difficulty_delta",
    "ab_test",
    "ab_group",
)
OUTCOME_COLUMNS: tuple[str, ...] = (
    "next_accuracy",
    "next_engagement",
    "session_completed",
    "total_session_time_ms",
)
#: Columns of an exported decision row (decisions.parquet), in order.
DECISION_COLUMNS: tuple[str, ...] = (
    ("decision_id", "learner_hash", "timestamp") + FEATURES + DECISION_META + OUTCOME_COLUMNS
)
#: Columns of an exported response row (responses.parquet), in order.
RESPONSE_COLUMNS: tuple[str, ...] = (
    "response_id",
    "learner_hash",
    "item_id",
    "module",
    "correct",
    "response_time_ms",
    "timestamp",
)
