"""Compare learner models on predicting the next answer (the evaluation protocol).

Two splits, both predicting every evaluated answer from the same learner's earlier answers only:

- ``temporal``: the last ``holdout_frac`` of every learner's answers are held out (as in the
  ``fit_irt`` stage); the models are fitted on the earlier answers of all learners.
- ``learners``: a ``test_split`` share of learners is held out whole; the models are fitted on
  the other learners and follow each held-out learner from their first answer.

Metrics (AUC, log-loss, accuracy of P ≥ 0.5, RMSE, ECE) come from
:mod:`learnops.evaluation.metrics`, their 95% intervals from the learner bootstrap of
:mod:`learnops.evaluation.bootstrap` (the learner is the unit), and every model is compared with
static IRT by the paired difference (model − IRT) on the same resampled learners. Answers to
items never seen in fitting are dropped from the split (counted in ``n_dropped``): no model
knows anything about them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from learnops.config import IrtConfig, LearnerModelsConfig

#: Models in display order, with their report labels.
LABELS: dict[str, str] = {"irt": "static IRT", "elo": "Elo", "pfa": "PFA", "best_lr": "Best-LR"}
METRICS: tuple[str, ...] = ("auc", "log_loss", "accuracy", "rmse", "ece")
#: Bins of the number of earlier answers, for the comparison with the true ability over time.
PRACTICE_BINS: tuple[int, ...] = (0, 5, 15, 30, 60, 100, 200)
REFERENCE = "irt"
#: Fewest answers in a practice bin of the truth comparison (fewer: the bin is left out).
MIN_BIN = 30


@dataclass
class SplitResult:
    """One split's predictions and metrics."""

    name: str
    rows: pd.DataFrame
    """Evaluated answers: learner, response_id, correct, n_prior, p_<model>, ability_<model>."""
    metrics: pd.DataFrame
    """Per (model, metric): value, low, high."""
    paired: pd.DataFrame
    """Per (model, metric): diff (model − static IRT), low, high; models other than IRT."""
    n_train: int
    n_test: int
    n_dropped: int
    seconds: dict[str, float] = field(default_factory=dict)
    elo_grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: dict[str, Any] = field(default_factory=dict)
    """The fitted models, by name."""

    def table(self) -> pd.DataFrame:
        """Models × metrics, each cell 'value [low, high]' as text, for the report."""
        m = self.metrics
        out = {}
        for model in m.index.get_level_values(0).unique():
            out[LABELS.get(model, model)] = {
                k: f"{m.loc[(model, k), 'value']:.4f} [{m.loc[(model, k), 'low']:.4f}, "
                f"{m.loc[(model, k), 'high']:.4f}]"
                for k in METRICS
            }
        return pd.DataFrame.from_dict(out, orient="index").rename_axis("model")


def split_temporal(responses: pd.DataFrame, frac: float) -> tuple[pd.DataFrame, np.ndarray]:
    """(training rows, held-out mask over ``responses``): each learner's latest ``frac``."""
    from learnops.data.splits import response_holdout

    train, test = response_holdout(responses, frac)
    mask = np.zeros(len(responses), bool)
    mask[responses.index.get_indexer(test.index)] = True
    return train, mask


def split_learners(
    responses: pd.DataFrame, frac: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """(training rows, held-out mask): a ``frac`` share of learners held out whole."""
    from learnops.data.splits import learner_column, learner_split_mask

    mask = learner_split_mask(responses[learner_column(responses)], frac, seed, "learner_models")
    return responses.loc[~mask], mask


def fit_models(
    train: pd.DataFrame,
    cfg: LearnerModelsConfig,
    irt_cfg: IrtConfig,
    seed: int,
) -> tuple[dict[str, Any], dict[str, float], pd.DataFrame]:
    """Fit every model of ``cfg.models`` on ``train``: (models, fit seconds, Elo's tuning grid).

    Elo's (alpha, beta) are chosen on a ``val_split`` share of the training learners, then refitted
    on all of them; Best-LR reuses the fitted static IRT model."""
    from learnops.data.splits import learner_column, learner_split_mask
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.elo import tune
    from learnops.learner_models.irt_static import StaticIrt
    from learnops.learner_models.pfa import Pfa

    models: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    grid = pd.DataFrame()
    t = time.perf_counter()
    irt = StaticIrt(irt_cfg, seed).fit(train)
    seconds["irt"] = time.perf_counter() - t
    models["irt"] = irt
    for name in cfg.models:
        t = time.perf_counter()
        if name == "elo":
            val = learner_split_mask(train[learner_column(train)], cfg.val_split, seed, "elo")
            models[name], grid = tune(train.loc[~val], train.loc[val], cfg.elo_alpha, cfg.elo_beta)
        elif name == "pfa":
            models[name] = Pfa(C=cfg.C).fit(train)
        elif name == "best_lr":
            models[name] = BestLr(irt, C=cfg.C, fit_irt=False).fit(train)
        else:
            continue
        seconds[name] = time.perf_counter() - t
    return models, seconds, grid


def evaluate_split(
    name: str,
    responses: pd.DataFrame,
    train: pd.DataFrame,
    test_mask: np.ndarray,
    cfg: LearnerModelsConfig,
    irt_cfg: IrtConfig,
    seed: int,
    history: np.ndarray | None = None,
) -> SplitResult:
    """Fit on ``train``, predict the rows of ``responses`` selected by ``history`` (default: all)
    in sequence and score those selected by ``test_mask``."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    models, seconds, grid = fit_models(train, cfg, irt_cfg, seed)
    known = set(train["item_id"].astype(str))
    keep = responses["item_id"].astype(str).isin(known).to_numpy().copy()
    if history is not None:
        keep &= history
    table = responses.loc[keep].reset_index(drop=True)
    is_test = test_mask[keep]
    n_dropped = int((test_mask & ~keep).sum())
    from learnops.learner_models.base import prepare

    seq = prepare(table)
    rows = pd.DataFrame(
        {
            "learner": table[lcol].astype(str).to_numpy(),
            "response_id": table["response_id"].astype(str).to_numpy()
            if "response_id" in table.columns
            else np.arange(len(table)).astype(str),
            "correct": seq.unsort(seq.y.astype(float)),
            "n_prior": seq.unsort(seq.n_prior.astype(np.int64)),
        }
    )
    for m, model in models.items():
        t = time.perf_counter()
        pred = model.predict(table)
        seconds[m] = seconds.get(m, 0.0) + time.perf_counter() - t
        rows[f"p_{m}"] = pred.p
        rows[f"ability_{m}"] = pred.ability
        rows[f"ability_se_{m}"] = pred.ability_se
    rows = rows.loc[is_test].reset_index(drop=True)
    metrics, paired = score(rows, list(models), cfg.bootstrap, cfg.ece_bins, seed)
    return SplitResult(
        name=name,
        rows=rows,
        metrics=metrics,
        paired=paired,
        n_train=len(train),
        n_test=len(rows),
        n_dropped=n_dropped,
        seconds=seconds,
        elo_grid=grid,
        models=models,
    )


def _row_losses(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    from learnops.evaluation.metrics import EPS

    pc = np.clip(p, EPS, 1 - EPS)
    return {
        "log_loss": -(y * np.log(pc) + (1 - y) * np.log(1 - pc)),
        "accuracy": ((p >= 0.5) == (y == 1)).astype(float),
        "sq": (p - y) ** 2,
    }


def score(
    rows: pd.DataFrame, models: list[str], n_boot: int, ece_bins: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics with learner-bootstrap intervals, and paired differences against static IRT.

    Log-loss and accuracy (means of per-answer values) use the vectorised cluster bootstrap of a
    mean; AUC, RMSE and ECE, and all their differences, come from one
    :func:`cluster_bootstrap_cis` pass. The same seed draws the same learners everywhere, so the
    differences are paired."""
    from learnops.evaluation.bootstrap import bootstrap_mean_ci, cluster_bootstrap_cis
    from learnops.evaluation.metrics import auc, ece_binary, rmse

    y = rows["correct"].to_numpy(float)
    cl = rows["learner"].to_numpy()
    losses = {m: _row_losses(y, rows[f"p_{m}"].to_numpy(float)) for m in models}
    frame = rows[["learner", "correct", *(f"p_{m}" for m in models)]]
    has_ref = REFERENCE in models

    def statistics(d: pd.DataFrame) -> dict[str, float]:
        yy = d["correct"].to_numpy()
        out = {}
        for m in models:
            p = d[f"p_{m}"].to_numpy()
            out[f"{m}|auc"] = auc(yy, p)
            out[f"{m}|rmse"] = rmse(yy, p)
            out[f"{m}|ece"] = ece_binary(yy, p, ece_bins)
        if has_ref:
            for m in models:
                for k in ("auc", "rmse", "ece"):
                    out[f"{m}-ref|{k}"] = out[f"{m}|{k}"] - out[f"{REFERENCE}|{k}"]
        return out

    boot = cluster_bootstrap_cis(frame, statistics, "learner", n_boot=n_boot, seed=seed)
    out, paired = [], []
    for m in models:
        for k in METRICS:
            if k in ("log_loss", "accuracy"):
                out.append((m, k, *bootstrap_mean_ci(losses[m][k], cl, n_boot=n_boot, seed=seed)))
            else:
                out.append((m, k, *boot[f"{m}|{k}"]))
        if m == REFERENCE or not has_ref:
            continue
        for k in METRICS:
            if k in ("log_loss", "accuracy"):
                d = losses[m][k] - losses[REFERENCE][k]
                paired.append((m, k, *bootstrap_mean_ci(d, cl, n_boot=n_boot, seed=seed)))
            else:
                paired.append((m, k, *boot[f"{m}-ref|{k}"]))
    cols = ["model", "metric"]
    metrics = pd.DataFrame(out, columns=[*cols, "value", "low", "high"]).set_index(cols)
    diffs = pd.DataFrame(paired, columns=[*cols, "diff", "low", "high"]).set_index(cols)
    return metrics, diffs


def reliability(rows: pd.DataFrame, models: list[str], n_bins: int) -> dict[str, pd.DataFrame]:
    """Per model, the reliability table of P(correct) (equal-width bins)."""
    from learnops.evaluation.calibration import binary_calibration_table

    return {
        m: binary_calibration_table(rows["correct"], rows[f"p_{m}"], n_bins=n_bins) for m in models
    }


def truth_comparison(rows: pd.DataFrame, truth: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Each model's ability estimate against the true current ability (``truth``: response_id,
    ability), overall and per bin of earlier answers: Pearson correlation, and RMSE after the
    least-squares linear map of the estimate onto the truth (each model has its own θ scale),
    fitted once on all the split's answers. Models without an ability (PFA) and bins with fewer
    than :data:`MIN_BIN` answers are left out."""
    t = truth[["response_id", "ability"]].astype({"response_id": str})
    merged = rows.merge(t, on="response_id", how="inner")
    if merged.empty:
        return pd.DataFrame(columns=["model", "practice", "n", "corr", "rmse"])
    edges = [*PRACTICE_BINS, np.inf]
    pairs = zip(edges[:-1], edges[1:], strict=True)
    labels = [f"{lo}–{int(hi) - 1}" if np.isfinite(hi) else f"{lo}+" for lo, hi in pairs]
    merged["practice"] = pd.cut(merged["n_prior"], edges, right=False, labels=labels)
    out = []
    for m in models:
        est = merged[f"ability_{m}"].to_numpy(float)
        if not np.isfinite(est).all():
            continue
        true = merged["ability"].to_numpy(float)
        slope, icpt = np.polyfit(est, true, 1)
        resid = true - (icpt + slope * est)
        groups = [("all", np.ones(len(merged), bool))]
        groups += [(lab, (merged["practice"] == lab).to_numpy()) for lab in labels]
        for lab, sel in groups:
            if sel.sum() < MIN_BIN:
                continue
            corr = float(np.corrcoef(est[sel], true[sel])[0, 1]) if est[sel].std() > 0 else np.nan
            rmse = float(np.sqrt(np.mean(resid[sel] ** 2)))
            out.append(
                {"model": m, "practice": lab, "n": int(sel.sum()), "corr": corr, "rmse": rmse}
            )
    return pd.DataFrame(out)
