"""One module per DVC stage: ``run(params) -> <Stage>Result``.

A stage reads its inputs, writes its outputs, its DVC metrics and its plot data, and returns what
its notebook draws. Notebooks call ``learnops.stages.<name>.run(params)``; ``learnops stage NAME``
runs the same function without a notebook. Wall-clock numbers (seconds, latency) go to
``reports/timings/<stage>.json``, which is not a DVC metric, so ``dvc metrics diff`` shows only
real changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learnops.io import METRIC_DIGITS, write_json, write_table

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
}


def run_stage(name: str, params: Params) -> Any:
    """Run stage ``name`` (a key of :data:`STAGES`) and return its result."""
    if name not in STAGES:
        from learnops.errors import LearnopsError

        raise LearnopsError(f"unknown stage {name!r}: use one of {', '.join(STAGES)}")
    return importlib.import_module(f"learnops.stages.{name}").run(params)


def read_training_table(params: Params, stage: str, table: str, model: str) -> pd.DataFrame:
    """``data/processed/<table>.parquet`` for a training stage; an empty export (a window with no
    such rows) raises NoTrainingData and writes nothing, so the previous model stays as it was."""
    from learnops.errors import NoTrainingData
    from learnops.io import read_table

    path = params.path(params.paths.processed_dir) / f"{table}.parquet"
    df = read_table(path)
    if df.empty:
        raise NoTrainingData(
            f"{stage}: no {table} in the export window ({path} is empty); {stage} skipped, "
            f"the previous {model} is left as it was"
        )
    return df


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
