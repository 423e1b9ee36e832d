"""Export a time window of the event store to validated Parquet tables.

The export is byte-stable: rows are sorted by (timestamp, id) and a Parquet file whose bytes would
not change is left untouched, so re-running the export on an unchanged store changes nothing (the
DVC stage runs on every ``dvc repro`` to pick up new rows in the store).

A window with decisions but no responses (e.g. only today's served traffic), or the reverse,
exports the empty table with its schema (``Exported.empty`` names it); the model stages that
read it then stop with *No training data available* and leave their previous model alone.
``min_data_points`` applies to each table that has rows; a window with no rows at all fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from learnops.config import ExportConfig
from learnops.data.schemas import validate_decisions, validate_responses
from learnops.data.store import EventStore
from learnops.errors import LearnopsError, NoTrainingData
from learnops.io import write_bytes

#: Sort key of each exported table: time, then the row id (a total order, so the bytes are stable).
SORT_KEYS: dict[str, list[str]] = {
    "decisions": ["timestamp", "decision_id"],
    "responses": ["timestamp", "response_id"],
}


@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until) in UTC."""

    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}

    def days(self) -> str:
        """The window as the dates the user means, both inclusive (for messages)."""
        last = self.until - timedelta(microseconds=1)
        return f"{self.since:%Y-%m-%d} .. {last:%Y-%m-%d}"


@dataclass
class Exported:
    """What an export holds and where; ``written[name]`` is False when the file on disk already
    held exactly these bytes and was kept."""

    window: Window
    decisions: pd.DataFrame
    responses: pd.DataFrame
    paths: dict[str, Path]
    written: dict[str, bool] = field(default_factory=dict)

    @property
    def empty(self) -> list[str]:
        """The tables exported without rows (written with their schema only)."""
        return [n for n, df in (("decisions", self.decisions), ("responses", self.responses))
                if df.empty]  # fmt: skip

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
            f"empty export window: since {since:%Y-%m-%d} is not before (or on) until "
            f"{cfg.until:%Y-%m-%d}"
        )
    return Window(since, until)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet bytes (no index): the same table gives the same bytes."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="snappy")
    return buf.getvalue()


def write_parquet_if_changed(path: str | Path, df: pd.DataFrame) -> bool:
    """Write ``df`` as Parquet atomically unless ``path`` already holds exactly these bytes
    (then the file, and its modification time, are kept). True when the file was written."""
    data = parquet_bytes(df)
    p = Path(path)
    if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data:
        return False
    write_bytes(p, data)
    return True


def sort_rows(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows in the deterministic export order (``keys``), with a fresh index."""
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def export(
    store: EventStore,
    cfg: ExportConfig,
    out_dir: str | Path,
    abilities: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame] | None = None,
) -> Exported:
    """Read the window from the store, validate both tables, write them atomically as Parquet
    (sorted by time then id; unchanged files are kept byte for byte). ``abilities``, when
    given, maps (decisions, responses) to the decisions whose ``ability``/``ability_se`` the
    chosen ability model supplies (the export stage passes it for ``irt.ability_model`` other
    than ``irt``)."""
    window = resolve_window(cfg, store.latest_timestamp())
    decisions = store.read_decisions(window.since, window.until, cfg.limit)
    responses = store.read_responses(window.since, window.until, cfg.limit)
    if decisions.empty and responses.empty:
        raise NoTrainingData(f"no decisions or responses in {window.days()} (inclusive)")
    for name, df in (("decisions", decisions), ("responses", responses)):
        if 0 < len(df) < cfg.min_data_points:
            raise LearnopsError(
                f"not enough {name} in the window: {len(df)} < min_data_points="
                f"{cfg.min_data_points} ({window.days()}, inclusive)"
            )
    tables = {
        "decisions": sort_rows(validate_decisions(decisions), SORT_KEYS["decisions"]),
        "responses": sort_rows(validate_responses(responses), SORT_KEYS["responses"]),
    }
    if abilities is not None:
        supplied = abilities(tables["decisions"], tables["responses"])
        tables["decisions"] = validate_decisions(supplied)
    out = Path(out_dir)
    paths = {name: out / f"{name}.parquet" for name in tables}
    written = {name: write_parquet_if_changed(paths[name], df) for name, df in tables.items()}
    return Exported(window, tables["decisions"], tables["responses"], paths, written)
