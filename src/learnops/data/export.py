"""Export a time window of the event store to validated Parquet tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from learnops.config import ExportConfig
from learnops.data.schemas import validate_decisions, validate_responses
from learnops.data.store import EventStore
from learnops.errors import LearnopsError, NoTrainingData
from learnops.io import write_table


@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until) in UTC."""

    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


@dataclass
class ExportResult:
    """What an export wrote."""

    window: Window
    decisions: pd.DataFrame
    responses: pd.DataFrame
    paths: dict[str, Path]

    def summary(self) -> dict:
        return {
            **self.window.as_dict(),
            "n_decisions": len(self.decisions),
            "n_responses": len(self.responses),
            "n_learners": int(
                pd.concat(
                    [self.decisions["learner_hash"], self.responses["learner_hash"]]
                ).nunique()
            ),
            "n_items": int(self.responses["item_id"].nunique()),
        }


def _day_start(d) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def resolve_window(cfg: ExportConfig, latest: datetime | None) -> Window:
    """The export window: ``until`` (a date, inclusive) defaults to the newest event in the store,
    so re-running on unchanged data gives the same window; ``since`` wins over ``last_days``."""
    if cfg.until is not None:
        until = _day_start(cfg.until) + timedelta(days=1)
    elif latest is not None:
        until = latest + timedelta(microseconds=1)
    else:
        raise NoTrainingData("the event store is empty")
    if cfg.since is not None:
        since = _day_start(cfg.since)
    elif cfg.last_days is not None:
        since = until - timedelta(days=cfg.last_days)
    else:
        since = datetime(1970, 1, 1, tzinfo=UTC)
    if since >= until and cfg.until is None:
        raise NoTrainingData(f"the window starts {since:%Y-%m-%d}, after the newest event")
    if since >= until:
        raise LearnopsError(
            f"empty export window: since {since:%Y-%m-%d} is not before until {until:%Y-%m-%d}"
        )
    return Window(since, until)


def export(store: EventStore, cfg: ExportConfig, out_dir: str | Path) -> ExportResult:
    """Read the window from the store, validate both tables, write them atomically as Parquet."""
    window = resolve_window(cfg, store.latest_timestamp())
    decisions = store.read_decisions(window.since, window.until, cfg.limit)
    responses = store.read_responses(window.since, window.until, cfg.limit)
    if decisions.empty and responses.empty:
        raise NoTrainingData(
            f"no decisions or responses between {window.since:%Y-%m-%d} and {window.until:%Y-%m-%d}"
        )
    for name, df in (("decisions", decisions), ("responses", responses)):
        if len(df) < cfg.min_data_points:
            raise LearnopsError(
                f"not enough {name} in the window: {len(df)} < min_data_points="
                f"{cfg.min_data_points} ({window.since:%Y-%m-%d} .. {window.until:%Y-%m-%d})"
            )
    decisions = validate_decisions(decisions)
    responses = validate_responses(responses)
    out = Path(out_dir)
    paths = {"decisions": out / "decisions.parquet", "responses": out / "responses.parquet"}
    write_table(paths["decisions"], decisions)
    write_table(paths["responses"], responses)
    return ExportResult(window, decisions, responses, paths)
