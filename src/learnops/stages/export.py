"""The ``export`` stage: the training window of the event store as validated Parquet tables.

Writes ``data/processed/decisions.parquet`` and ``responses.parquet`` (byte-stable: an unchanged
store leaves both files untouched, which matters because the DVC stage always runs to pick up new
rows) and the DVC metric ``reports/metrics/export.json`` (the window and its counts), and returns
what notebook 01 shows: daily volume, the decisions' action mix and outcomes, the responses'
coverage of items, learners and modules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params
    from learnops.data.export import Exported
    from learnops.stages import Skipped


@dataclass
class ExportResult:
    """What notebook 01 shows."""

    exported: Exported
    summary: dict[str, Any]
    daily: pd.DataFrame
    action_by_decider: pd.DataFrame
    module_coverage: pd.DataFrame
    responses_per_item: pd.Series
    responses_per_learner: pd.Series
    written: dict[str, bool]

    @property
    def decisions(self) -> pd.DataFrame:
        return self.exported.decisions

    @property
    def responses(self) -> pd.DataFrame:
        return self.exported.responses

    def no_rows(self, table: str) -> Skipped | None:
        """What the report shows in place of ``table``'s figures ('decisions' or 'responses')
        when the window holds none (e.g. imported IRT responses and no decisions), else None."""
        from learnops.stages import Skipped

        if not getattr(self, table).empty:
            return None
        users = {
            "decisions": "train_mlp, evaluate, ab_analysis and monitoring skip too",
            "responses": "fit_irt skips too, and evaluate measures the decision model alone",
        }[table]
        return Skipped(
            stage=f"the {table} figures",
            reason=f"the export window holds no {table}: {users}",
            headline=f"No {table} in the export window",
        )

    @property
    def summary_table(self) -> pd.DataFrame:
        """The summary as a one-column table."""
        import pandas as pd

        return pd.Series(self.summary, name="value").to_frame()


def daily_volume(decisions: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Responses and decisions per UTC day (days without rows count 0)."""
    import pandas as pd

    counts = {
        "responses": responses.set_index("timestamp").resample("D").size(),
        "decisions": decisions.set_index("timestamp").resample("D").size(),
    }
    out = pd.DataFrame(counts).fillna(0).astype(int)
    out = out.asfreq("D", fill_value=0) if len(out) else out
    return out.rename_axis("date").reset_index()


def action_by_decider(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions per action (rows) and decider (columns), with totals."""
    import pandas as pd

    return pd.crosstab(decisions["action"], decisions["decided_by"], margins=True)


def module_coverage(responses: pd.DataFrame) -> pd.DataFrame:
    """Per module (the index): responses, distinct items and learners, and the share answered
    correctly."""
    return responses.groupby("module").agg(
        responses=("correct", "size"),
        items=("item_id", "nunique"),
        learners=("learner_hash", "nunique"),
        p_correct=("correct", "mean"),
    )


def _abilities(params: Params):
    """None with ``irt.ability_model: irt`` (the logged ability/ability_se are kept); otherwise
    the function that replaces them with the chosen learner model's, as of each decision
    (:func:`~learnops.learner_models.ability.export_abilities`)."""
    from learnops.learner_models.ability import export_abilities

    return export_abilities(params)


def run(params: Params) -> ExportResult:
    """Export the window configured in ``params.export`` and tabulate it."""
    from learnops.data.export import export
    from learnops.data.store import EventStore
    from learnops.stages import write_metrics, write_timings

    t0 = time.perf_counter()
    store = EventStore(params.db_url)
    try:
        exported = export(
            store,
            params.export,
            params.path(params.paths.processed_dir),
            abilities=_abilities(params),
        )
    finally:
        store.dispose()
    summary = exported.summary()
    write_metrics(params, "export", summary)
    write_timings(params, "export", {"seconds": round(time.perf_counter() - t0, 3)})
    dec, resp = exported.decisions, exported.responses
    return ExportResult(
        exported=exported,
        summary=summary,
        daily=daily_volume(dec, resp),
        action_by_decider=action_by_decider(dec),
        module_coverage=module_coverage(resp),
        responses_per_item=resp.groupby("item_id").size().rename("responses"),
        responses_per_learner=resp.groupby("learner_hash").size().rename("responses"),
        written=dict(exported.written),
    )
