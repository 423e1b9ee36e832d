"""The ``fit_irt`` stage: compare IRT models on held-out answers, save the configured one.

Reads ``data/processed/responses.parquet``, holds out each learner's latest answers
(:func:`learnops.data.splits.irt_holdout`), fits the heuristic baseline, the 1PL and the 2PL (and
``irt.model`` when it is another one, i.e. the 3PL) on the training part, scores their predictions
of the held-out answers, saves the configured model (fitted on the training part, so that the
``evaluate`` stage measures it on answers it never saw) to ``models/irt`` and writes
``reports/metrics/irt.json``. Fit seconds go to ``reports/timings/fit_irt.json``.

No data: when the export window holds no responses (e.g. only served decisions), the stage
stops before fitting with *No training data available: … no responses …* and writes nothing, so
``models/irt`` and ``irt.json`` stay as the last fit left them (a run outside DVC keeps using
that model; ``dvc repro`` stops here, as for an empty window). A degenerate window (one learner
or one item) fails the same way, with the minimum it needs (:func:`learnops.irt.fit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from learnops.config import Params
    from learnops.irt import IrtFit

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


def run(params: Params) -> FitIrtResult:
    """Fit and compare the IRT models, save the configured one, write metrics and timings."""
    from learnops import irt
    from learnops.data.splits import irt_holdout
    from learnops.io import jsonable, read_table
    from learnops.stages import read_training_table, write_metrics, write_timings

    t0 = time.perf_counter()
    responses = read_training_table(params, STAGE, "responses", "IRT model")
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
    model_dir = params.path(params.paths.models_dir) / "irt"
    chosen.save(model_dir, timing=False)  # no wall-clock: a refit writes identical bytes
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
