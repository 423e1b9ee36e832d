"""The ``fit_irt`` stage: compare IRT models on held-out answers, save the configured one.

Reads ``data/processed/responses.parquet``, holds out each learner's latest answers
(:func:`learnops.data.splits.irt_holdout`), fits the heuristic baseline, the 1PL and the 2PL (and
``irt.model`` when it is another one, i.e. the 3PL) on the training part, scores their predictions
of the held-out answers, saves the configured model (fitted on the training part, so that the
``evaluate`` stage measures it on answers it never saw) to ``models/irt`` and writes
``reports/metrics/irt.json``. Fit seconds go to ``reports/timings/fit_irt.json``.

The model directory is written next to ``models/irt`` and renamed into place, so a reader (or an
interrupted run) sees the old model or the new one, never a mix of both.

No data (issue 22, item 14): when the export window holds no responses (e.g. only served
decisions), the stage fits nothing and returns a :class:`~learnops.stages.Skipped` (*No data in
the export window: fit_irt skipped; the previous model is kept*) instead of a
:class:`FitIrtResult`, so that ``dvc repro`` goes on. ``models/irt`` stays as the last fit left
it (the DVC out is ``persist: true``; without a previous model it is created empty), and
``irt.json`` says so::

    {"skipped": true, "reason": "no responses in the export window (… is empty)",
     "kept_model": {"model": "2pl", "n_responses": …, "n_learners": …, "n_items": …,
                    "loglik": …, "converged": …, "iterations": …}}

``kept_model`` (present only when a previous model exists) holds the kept fit's statistics from
its ``fit.json`` (the held-out metrics of the run that fitted it are not stored with the model).
A degenerate window (one learner or one item) still fails, with the minimum it needs
(:func:`learnops.irt.fit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from learnops.config import Params
    from learnops.irt import IrtFit
    from learnops.stages import Skipped

__all__ = ["BASE_MODELS", "HELDOUT_KEYS", "FitIrtResult", "candidate_models", "run"]

STAGE = "fit_irt"
#: Models always compared; ``irt.model`` is added when it is not one of them.
BASE_MODELS: tuple[str, ...] = ("heuristic", "1pl", "2pl")
#: Held-out metrics per model written to irt.json, in display order (``evaluate_predictions``
#: keys; listed so that the DVC metric keys do not change when that function returns more).
HELDOUT_KEYS: tuple[str, ...] = (
    "accuracy", "precision", "recall", "f1", "rmse", "mae", "auc", "log_loss",
)  # fmt: skip
#: Further ``evaluate_predictions`` keys shown in the report's table when present.
EXTRA_REPORT_KEYS: tuple[str, ...] = ("brier", "ece")
RECOVERY_COLUMNS = ("item_id", "difficulty", "difficulty_true", "discrimination",
                    "discrimination_true")  # fmt: skip


@dataclass
class FitIrtResult:
    """What the ``fit_irt`` stage measured and wrote (everything its notebook shows)."""

    data_summary: pd.DataFrame
    """Responses, learners and items in the exported table (one ``value`` column)."""
    split_summary: pd.DataFrame
    """Training rows, held-out rows and held-out rows dropped (item unseen in training)."""
    fit_table: pd.DataFrame
    """Per model: log-likelihood, EM iterations, convergence, number of warnings."""
    heldout: pd.DataFrame
    """Per model: held-out accuracy, precision, recall, F1, RMSE, MAE, AUC, log-loss."""
    model: str
    """The configured model (``irt.model``), saved to ``models/irt``."""
    warnings: list[str]
    """Warnings of the saved fit."""
    recovery: pd.DataFrame
    """Saved fit's item parameters next to the simulator's true ones (empty with real data)."""
    recovery_r: dict[str, float]
    """Correlation of estimated and true difficulty / discrimination (empty with real data)."""
    metrics: dict[str, Any]
    """The document written to ``reports/metrics/irt.json``."""
    model_dir: Path
    seconds: float
    fits: dict[str, IrtFit] = field(repr=False)

    skipped: ClassVar[bool] = False

    @property
    def warnings_table(self) -> pd.DataFrame:
        """The saved fit's warnings, one per row (``warning`` column)."""
        return pd.DataFrame({"warning": self.warnings}, dtype=object)

    @property
    def recovery_correlations(self) -> pd.DataFrame:
        """Correlation of estimated and true parameters, one row per parameter."""
        table = pd.DataFrame(
            {"r": pd.Series(self.recovery_r, dtype=float), "items": len(self.recovery)}
        )
        table.index.name = "parameter"
        return table

    @property
    def chosen(self) -> IrtFit:
        """The saved fit (``fits[model]``)."""
        return self.fits[self.model]


def candidate_models(configured: str) -> list[str]:
    """The models compared held-out: :data:`BASE_MODELS` plus the configured one."""
    models = list(BASE_MODELS)
    if configured not in models:
        models.append(configured)
    return models


def fit_table(fits: dict[str, IrtFit]) -> pd.DataFrame:
    """Deterministic fit statistics per model (no wall-clock seconds)."""
    rows = {
        m: {
            "loglik": float(f.loglik),
            "iterations": int(f.iterations),
            "converged": bool(f.converged),
            "warnings": len(f.warnings),
        }
        for m, f in fits.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def recovery_table(f: IrtFit, truth: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Estimated against true item parameters, and their correlations (empty without truth)."""
    if truth is None or truth.empty:
        return pd.DataFrame(columns=list(RECOVERY_COLUMNS)), {}
    true = truth[["item_id", "discrimination", "difficulty"]].astype({"item_id": str})
    est = f.items[["item_id", "discrimination", "difficulty"]].astype({"item_id": str})
    merged = est.merge(true, on="item_id", suffixes=("", "_true"))[list(RECOVERY_COLUMNS)]
    r = {}
    for col in ("difficulty", "discrimination"):
        x, y = merged[f"{col}_true"].to_numpy(float), merged[col].to_numpy(float)
        ok = len(merged) > 1 and np.std(x) > 0 and np.std(y) > 0
        r[col] = float(np.corrcoef(x, y)[0, 1]) if ok else float("nan")
    return merged.reset_index(drop=True), r


def heldout_table(heldout: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model: :data:`HELDOUT_KEYS`, then :data:`EXTRA_REPORT_KEYS` when present
    (float; an undefined AUC is NaN)."""
    table = pd.DataFrame.from_dict(heldout, orient="index")
    extra = [k for k in EXTRA_REPORT_KEYS if k in table.columns]
    table = table[[*HELDOUT_KEYS, *extra]]
    return table.astype(float).rename_axis("model")


def metrics_document(
    chosen: IrtFit, n_train: int, n_test: int, heldout: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The ``irt.json`` DVC metrics: the saved model's fit, and every model's held-out metrics."""
    return {
        "model": chosen.model,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "loglik": float(chosen.loglik),
        "converged": bool(chosen.converged),
        **{f"{m}_{k}": row[k] for m, row in heldout.items() for k in HELDOUT_KEYS},
    }


#: fit.json keys copied under ``kept_model`` when the stage is skipped.
KEPT_KEYS: tuple[str, ...] = (
    "model", "n_responses", "n_learners", "n_items", "loglik", "converged", "iterations",
)  # fmt: skip


def kept_model(model_dir: Path) -> dict[str, Any]:
    """The fit statistics (:data:`KEPT_KEYS` of ``fit.json``) of the model in ``model_dir``, or
    ``{}`` when there is none (``{"unreadable": path}`` when its fit.json is not JSON)."""
    import json

    fit_json = model_dir / "fit.json"
    if not fit_json.is_file():
        return {}
    try:
        stats = json.loads(fit_json.read_text())
    except ValueError:
        return {"unreadable": str(fit_json)}
    return {k: stats[k] for k in KEPT_KEYS if k in stats}


def run(params: Params) -> FitIrtResult | Skipped:
    """Fit and compare the IRT models, save the configured one, write metrics and timings. With
    no responses in the export window, keep the previous model and return a ``Skipped``."""
    import tempfile

    from learnops import irt
    from learnops.data.splits import irt_holdout
    from learnops.io import jsonable, read_table
    from learnops.stages import (
        no_rows_reason,
        processed_table,
        replace_directory,
        skip_training,
        write_metrics,
        write_timings,
    )

    t0 = time.perf_counter()
    model_dir = params.path(params.paths.models_dir) / "irt"
    _, responses = processed_table(params, "responses")
    if responses.empty:
        reason = no_rows_reason(params, "responses")
        return skip_training(params, STAGE, "irt", "irt", reason, kept_model(model_dir))
    lcol = "learner_hash" if "learner_hash" in responses.columns else "learner_id"
    train, test = irt_holdout(responses, params)
    fits = {
        m: irt.fit(train, m, config=params.irt, seed=params.seed)
        for m in candidate_models(params.irt.model)
    }
    heldout = {
        m: irt.evaluate_predictions(test["correct"], f.predict(test)) for m, f in fits.items()
    }
    chosen = fits[params.irt.model]
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".irt.", suffix=".tmp", dir=model_dir.parent))
    try:
        chosen.save(tmp, timing=False)  # no wall-clock: a refit writes identical bytes
        replace_directory(tmp, model_dir)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    metrics = jsonable(metrics_document(chosen, len(train), len(test), heldout))
    write_metrics(params, "irt", metrics)

    truth_path = params.path(params.paths.truth_dir) / "items.csv"
    truth = read_table(truth_path) if truth_path.is_file() else None
    recovery, recovery_r = recovery_table(chosen, truth)
    seconds = time.perf_counter() - t0
    write_timings(
        params,
        STAGE,
        {"fit_seconds": {m: f.seconds for m, f in fits.items()}, "stage_seconds": seconds},
    )
    data_summary = pd.Series(
        {
            "responses": len(responses),
            "learners": int(responses[lcol].nunique()),
            "items": int(responses["item_id"].nunique()),
            "share correct": round(float(pd.to_numeric(responses["correct"]).mean()), 4),
        },
        name="value",
        dtype=object,
    ).to_frame()
    split = pd.Series(
        {
            "training rows": len(train),
            "held-out rows": len(test),
            "held-out rows dropped (item unseen in training)": len(responses)
            - len(train)
            - len(test),
        },
        name="value",
    ).to_frame()
    return FitIrtResult(
        data_summary=data_summary,
        split_summary=split,
        fit_table=fit_table(fits),
        heldout=heldout_table(heldout),
        model=params.irt.model,
        warnings=list(chosen.warnings),
        recovery=recovery,
        recovery_r=recovery_r,
        metrics=metrics,
        model_dir=model_dir,
        seconds=seconds,
        fits=fits,
    )
