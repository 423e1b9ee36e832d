"""One module per DVC stage: ``run(params) -> <Stage>Result``.

A stage reads its inputs, writes its outputs, its DVC metrics and its plot data, and returns what
its notebook draws. Notebooks call ``learnops.stages.<name>.run(params)``; ``learnops stage NAME``
runs the same function without a notebook. Wall-clock numbers (seconds, latency) go to
``reports/timings/<stage>.json``, which is not a DVC metric, so ``dvc metrics diff`` shows only
real changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from learnops.io import METRIC_DIGITS, write_json, write_table
from learnops.io import replace_directory as replace_directory  # the stages' model dirs

if TYPE_CHECKING:
    import pandas as pd

    from learnops.config import Params

#: DVC stage name → notebook, in pipeline order.
STAGES: dict[str, str] = {
    "simulate": "00_simulate.ipynb",
    "export": "01_export.ipynb",
    "train_mlp": "02_train_mlp.ipynb",
    "fit_irt": "03_fit_irt.ipynb",
    "evaluate": "04_evaluate.ipynb",
    "ab_analysis": "05_ab_analysis.ipynb",
    "monitoring": "06_monitoring.ipynb",
    "register": "07_register.ipynb",
    "learner_models": "08_learner_models.ipynb",
}


def run_stage(name: str, params: Params) -> Any:
    """Run stage ``name`` (a key of :data:`STAGES`) and return its result; a stage skipped for
    lack of data (:class:`Skipped`, or the ``skips`` of ``register``) is noted on stderr."""
    import sys

    if name not in STAGES:
        from learnops.errors import LearnopsError

        raise LearnopsError(f"unknown stage {name!r}: use one of {', '.join(STAGES)}")
    result = importlib.import_module(f"learnops.stages.{name}").run(params)
    notes = [result] if getattr(result, "skipped", False) else getattr(result, "skips", [])
    for note in notes:
        print(f"note: {note.message}", file=sys.stderr)
    return result


#: The first words of every skip message (the report runner prints the skips of a stage).
NO_DATA = "No data in the export window"


@dataclass
class Skipped:
    """A stage that had nothing to work on and went on without it (issue 22, item 14).

    ``run`` returns it in place of the stage's result: the notebook shows it (a Markdown note; the
    figure and table cells are guarded by ``if not res.skipped``) and the report runner prints
    :attr:`message` on the terminal. ``metrics`` is what the stage wrote to its DVC metrics file:
    ``{"skipped": true, "reason": …}`` plus, for a training stage, the kept model's figures."""

    stage: str
    reason: str
    """Why: which table is empty or which model is missing."""
    kept: str = ""
    """What the stage keeps in place of new outputs (e.g. "the previous model is kept")."""
    metrics: dict[str, Any] = field(default_factory=dict)
    headline: str = NO_DATA
    """The message's first words: why in three words (:data:`NO_DATA` by default)."""

    skipped: ClassVar[bool] = True

    @property
    def message(self) -> str:
        """``No data in the export window: <stage> skipped; <kept>`` (one line)."""
        return f"{self.headline}: {self.stage} skipped" + (f"; {self.kept}" if self.kept else "")

    def _repr_markdown_(self) -> tuple[str, dict[str, Any]]:
        text = f"> **{self.message}.**\n>\n> {self.reason}."
        return text, {"learnops": {"skipped": self.stage, "message": self.message}}

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})"


def processed_table(params: Params, table: str) -> tuple[Path, pd.DataFrame]:
    """``data/processed/<table>.parquet``: its path and its rows."""
    from learnops.io import read_table

    path = params.path(params.paths.processed_dir) / f"{table}.parquet"
    return path, read_table(path)


def no_rows_reason(params: Params, table: str) -> str:
    """The reason of a skip for an empty export table (the path as configured, so that the DVC
    metric holding it is the same in every checkout)."""
    path = Path(params.paths.processed_dir) / f"{table}.parquet"
    return f"no {table} in the export window ({path.as_posix()} is empty)"


def write_metrics(params: Params, stage: str, metrics: dict[str, Any]) -> Path:
    """Write ``reports/metrics/<stage>.json`` (a DVC metric: deterministic values only), floats
    rounded to :data:`~learnops.io.METRIC_DIGITS` (10) significant digits, so that machines whose
    floats differ in the last bits write the same file and ``dvc metrics diff`` stays quiet.

    The floats of ``metrics`` (its nested dicts and lists) are rounded in place too, so that the
    stage's result, which notebooks show, holds exactly what the metric file says."""
    _round_in_place(metrics, METRIC_DIGITS)
    path = params.path(params.paths.reports_dir) / "metrics" / f"{stage}.json"
    write_json(path, metrics, digits=METRIC_DIGITS)
    return path


def _round_in_place(obj: Any, digits: int) -> None:
    """Round every finite float held in the dicts and lists of ``obj`` (recursively), in place."""
    import math

    from learnops.io import round_sig

    if isinstance(obj, dict):
        keys: Any = list(obj)
    elif isinstance(obj, list):
        keys = range(len(obj))
    else:
        return
    for k in keys:
        v = obj[k]
        is_float = isinstance(v, float) or getattr(getattr(v, "dtype", None), "kind", "") == "f"
        if is_float and getattr(v, "ndim", 0) == 0:  # floats and numpy float scalars
            if math.isfinite(float(v)):
                obj[k] = round_sig(float(v), digits)
        else:
            _round_in_place(v, digits)


def write_timings(params: Params, stage: str, timings: dict[str, Any]) -> Path:
    """Write ``reports/timings/<stage>.json``: wall-clock figures, deliberately not a DVC metric."""
    path = params.path(params.paths.reports_dir) / "timings" / f"{stage}.json"
    write_json(path, timings)
    return path


def write_plot_data(params: Params, stage: str, name: str, table: pd.DataFrame) -> Path:
    """Write ``reports/plots/<stage>/<name>.csv`` (a DVC plot), float columns rounded to
    :data:`~learnops.io.METRIC_DIGITS` significant digits like the metrics."""
    path = params.path(params.paths.reports_dir) / "plots" / stage / f"{name}.csv"
    write_table(path, table, digits=METRIC_DIGITS)
    return path


def skip_training(
    params: Params, stage: str, metrics_name: str, model: str, reason: str, kept: dict[str, Any]
) -> Skipped:
    """Skip a training stage: keep ``models/<model>`` as it is (DVC keeps it: the out is
    ``persist: true``), write ``reports/metrics/<metrics_name>.json`` as
    ``{"skipped": true, "reason": …, "kept_model": {…}}`` (``kept_model`` only when a previous
    model exists: ``kept``, its figures) and return the :class:`Skipped` the notebook shows.

    Without a previous model, ``models/<model>`` is created empty (DVC needs the out; the stages
    downstream read an empty directory as no model)."""
    model_dir = params.path(params.paths.models_dir) / model
    metrics: dict[str, Any] = {"skipped": True, "reason": reason}
    if kept:
        metrics["kept_model"] = kept
        note = "the previous model is kept"
    else:
        model_dir.mkdir(parents=True, exist_ok=True)
        note = f"there is no previous model ({model_dir} is left empty)"
    write_metrics(params, metrics_name, metrics)
    return Skipped(stage=stage, reason=reason, kept=note, metrics=metrics)
