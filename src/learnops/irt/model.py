"""Fitted IRT models: estimation entry point, persistence, prediction, heuristic baseline."""

from __future__ import annotations

import json
import time
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from learnops.config import IrtConfig
from learnops.errors import LearnopsError
from learnops.irt.data import COUNTS, data_warnings, encode, learner_column
from learnops.irt.em import EMResult, run_em
from learnops.irt.estep import EStep, design_matrix, quadrature
from learnops.irt.parallel import keeps_heap
from learnops.irt.params import Params, Priors
from learnops.irt.scoring import item_params, probability
from learnops.irt.se import transformed_se

if TYPE_CHECKING:
    from learnops.irt.data import Encoded

MODELS = ("1pl", "2pl", "3pl", "heuristic")
#: Item parameters each model estimates per item (the minimum number of responses counts them).
PARAMS_PER_ITEM = {"1pl": 1, "2pl": 2, "3pl": 3, "heuristic": 1}
#: Proportion correct → ability lookup used by the seed's heuristic (linear interpolation).
HEURISTIC_TABLE = ((0.1, -2.0), (0.25, -1.0), (0.5, 0.0), (0.75, 1.0), (0.9, 2.0))


@dataclass
class IrtFit:
    """A fitted IRT model: item table, EAP abilities and fit statistics."""

    model: str
    items: pd.DataFrame
    abilities: pd.DataFrame
    loglik: float
    iterations: int
    converged: bool
    n_learners: int
    n_items: int
    n_responses: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def params(self) -> Params:
        """Internal (slope, intercept[, logit guessing]) parameters, in items order."""
        return item_params(self.items)

    def fit_stats(self) -> dict[str, Any]:
        """The fit.json document."""
        return {
            "model": self.model,
            "loglik": float(self.loglik),
            "iterations": int(self.iterations),
            "converged": bool(self.converged),
            "n_learners": int(self.n_learners),
            "n_items": int(self.n_items),
            "n_responses": int(self.n_responses),
            "seconds": round(float(self.seconds), 3),
            "warnings": list(self.warnings),
            **self.info,
        }

    def predict(self, responses: pd.DataFrame) -> np.ndarray:
        """P(correct) for each row (learner, item); unseen learners get θ = 0 (with a warning)."""
        p, n_new = self._predict(responses)
        if n_new:
            _warnings.warn(unknown_learner_message(n_new), UserWarning, stacklevel=2)
        return p

    def _predict(self, responses: pd.DataFrame) -> tuple[np.ndarray, int]:
        lcol = learner_column(responses)
        if "item_id" not in responses.columns:
            raise LearnopsError("responses: missing column: item_id")
        item_ids = self.items["item_id"].astype(str)
        pos = pd.Index(item_ids).get_indexer(responses["item_id"].astype(str))
        if (pos < 0).any():
            unknown = pd.unique(responses["item_id"].astype(str).to_numpy()[pos < 0])
            shown = ", ".join(map(str, unknown[:20])) + (", ..." if len(unknown) > 20 else "")
            raise LearnopsError(f"{len(unknown)} unknown item(s) (not in the fit): {shown}")
        ab = self.abilities
        lpos = pd.Index(ab["learner_id"].astype(str)).get_indexer(responses[lcol].astype(str))
        theta = np.where(lpos >= 0, ab["theta"].to_numpy(float)[np.maximum(lpos, 0)], 0.0)
        n_new = int(pd.unique(responses[lcol].astype(str).to_numpy()[lpos < 0]).size)
        return probability(self.params(), pos, theta), n_new

    def save(self, directory: str | Path, timing: bool = True) -> None:
        """Write items.csv, abilities.csv and fit.json (atomically) into ``directory``.

        ``timing=False`` leaves the wall-clock ``seconds`` out of fit.json, so that a refit on
        the same data writes byte-identical files (the pipeline and the registry use this).
        """
        from learnops.io import write_json, write_table

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_table(d / "items.csv", self.items)
        write_table(d / "abilities.csv", self.abilities)
        stats = self.fit_stats()
        if not timing:
            stats.pop("seconds")
        write_json(d / "fit.json", stats)


def unknown_learner_message(n: int) -> str:
    return (
        f"{n} learner(s) not in the fitted abilities: predicted at θ = 0 "
        "(the prior mean, i.e. EAP with no data)"
    )


def load(directory: str | Path) -> IrtFit:
    """Read a fit written by ``IrtFit.save`` (or ``learnops irt fit``)."""
    from learnops.io import read_table

    d = Path(directory)
    fit_json = d / "fit.json"
    if not fit_json.is_file():
        raise LearnopsError(f"{d}: not an IRT model directory (no fit.json)")
    stats = json.loads(fit_json.read_text())
    items = read_table(d / "items.csv", ["item_id", "discrimination", "difficulty"])
    abilities = read_table(d / "abilities.csv", ["learner_id", "theta", "theta_se"])
    items["item_id"] = items["item_id"].astype(str)
    abilities["learner_id"] = abilities["learner_id"].astype(str)
    known = {"model", "loglik", "iterations", "converged", "n_learners", "n_items",
             "n_responses", "seconds", "warnings"}  # fmt: skip
    return IrtFit(
        model=stats["model"],
        items=items,
        abilities=abilities,
        loglik=stats["loglik"],
        iterations=stats["iterations"],
        converged=stats["converged"],
        n_learners=stats["n_learners"],
        n_items=stats["n_items"],
        n_responses=stats["n_responses"],
        seconds=stats.get("seconds", 0.0),
        warnings=list(stats.get("warnings", [])),
        info={k: v for k, v in stats.items() if k not in known},
    )


@keeps_heap
def fit(
    responses: pd.DataFrame,
    model: str = "2pl",
    *,
    config: IrtConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    priors: bool = True,
    se: str = "auto",
    engine: Any = None,
) -> IrtFit:
    """Fit a 1PL/2PL/3PL model by marginal ML (EM), or the ``heuristic`` baseline.

    ``responses`` is long format: learner_id|learner_hash, item_id, correct. ``priors=False``
    ignores the config's priors (plain MML). ``se`` is ``auto``, ``exact`` (numerical Hessian of
    the marginal likelihood), ``louis-exact`` (the same information by the per-learner Louis
    formula, for large data), ``louis-block`` (per-item Louis approximation) or ``none``.
    The E-steps run on ``engine`` (a ``learnops.irt.parallel`` engine; default: the config's
    ``engine``, ``workers`` and ``dask_address``). The estimate is deterministic (the same for
    any engine and number of workers); ``seed`` is recorded only.
    """
    cfg = config or IrtConfig()
    if model not in MODELS:
        raise LearnopsError(f"unknown IRT model {model!r} (use one of {', '.join(MODELS)})")
    t0 = time.perf_counter()
    enc = encode(responses)
    check_identifiable(enc, model)
    if model == "heuristic":
        result = _fit_heuristic(enc, cfg, data_warnings(enc))
    else:
        pri = (
            Priors(cfg.prior_a, cfg.prior_b, cfg.prior_c if model == "3pl" else None)
            if priors
            else Priors()
        )
        from learnops.irt.parallel import make_engine

        eng = engine or make_engine(cfg.engine, cfg.workers, cfg.dask_address)
        try:
            # the counts behind the warnings (and the design matrix), on the engine's threads
            eng.map_local(lambda name: getattr(enc, name), list(COUNTS))
            warns = data_warnings(enc)
            res = run_em(
                enc,
                model,
                priors=pri,
                quad_points=cfg.quad_points,
                quad_range=cfg.quad_range,
                max_iter=cfg.max_iter,
                tol=cfg.tol,
                se=se,
                progress=progress,
                engine=eng,
            )
        finally:
            if engine is None:
                eng.close()
        result = _assemble(enc, model, res, pri, cfg, warns)
    result.info["seed"] = int(seed)
    result.seconds = time.perf_counter() - t0
    return result


def check_identifiable(enc: Encoded, model: str) -> None:
    """Refuse data a model cannot be fitted on: at least 2 learners, 2 items and as many
    responses as item parameters (one line, with the minimum)."""
    n_params = PARAMS_PER_ITEM[model] * enc.n_items
    problems = []
    if enc.n_learners < 2:
        problems.append(f"{enc.n_learners} learner(s) (needs at least 2)")
    if enc.n_items < 2:
        problems.append(f"{enc.n_items} item(s) (needs at least 2)")
    if enc.n_responses < n_params:
        problems.append(
            f"{enc.n_responses} response(s) for {n_params} item parameter(s) (needs at least "
            f"{PARAMS_PER_ITEM[model]} per item)"
        )
    if problems:
        raise LearnopsError(f"cannot fit {model}: the responses have " + "; ".join(problems))


def _assemble(
    enc: Encoded, model: str, res: EMResult, pri: Priors, cfg: IrtConfig, warns
) -> IrtFit:
    p = res.params
    items = pd.DataFrame({"item_id": enc.item_ids, "discrimination": p.a, "difficulty": p.b})
    if p.g is not None:
        items["guessing"] = p.c
    se_cols = ["discrimination_se", "difficulty_se"] + (["guessing_se"] if p.g is not None else [])
    if res.cov_blocks is not None:
        se = transformed_se(p, res.cov_blocks)
        items["discrimination_se"], items["difficulty_se"] = se["a"], se["b"]
        if p.g is not None:
            items["guessing_se"] = se["c"]
        bad = ~np.isfinite(items[se_cols].to_numpy()).all(axis=1)
        if bad.any():
            ids = ", ".join(map(str, enc.item_ids[bad][:10]))
            warns.append(f"{int(bad.sum())} item(s) without a finite standard error: {ids}")
    else:
        for c in se_cols:
            items[c] = np.nan
        warns.append("standard errors not computed (se='none')")
    near_zero = np.abs(p.a) < 0.05
    if near_zero.any():
        ids = ", ".join(map(str, enc.item_ids[near_zero][:10]))
        warns.append(f"{int(near_zero.sum())} item(s) with near-zero discrimination: {ids}")
    abilities = pd.DataFrame(
        {"learner_id": enc.learner_ids, "theta": res.abilities[:, 0],
         "theta_se": res.abilities[:, 1]}
    )  # fmt: skip
    return IrtFit(
        model=model,
        items=items,
        abilities=abilities,
        loglik=res.loglik,
        iterations=res.iterations,
        converged=res.converged,
        n_learners=enc.n_learners,
        n_items=enc.n_items,
        n_responses=enc.n_responses,
        warnings=warns + res.warnings,
        info={
            "objective": float(res.objective),
            "priors": pri.as_dict(),
            "quad_points": cfg.quad_points,
            "quad_range": cfg.quad_range,
            "tol": cfg.tol,
            "max_iter": cfg.max_iter,
            "se_method": res.se_method,
            "ability_method": "eap",
        },
    )


def heuristic_theta(prop_correct: np.ndarray) -> np.ndarray:
    """The seed's success-rate → ability table, linearly interpolated (clamped at the ends)."""
    xs, ys = zip(*HEURISTIC_TABLE, strict=True)
    return np.interp(prop_correct, xs, ys)


def _fit_heuristic(enc: Encoded, cfg: IrtConfig, warns: list[str]) -> IrtFit:
    n_i = np.bincount(enc.item, minlength=enc.n_items).astype(float)
    rate_i = np.bincount(enc.item, weights=enc.y, minlength=enc.n_items) / n_i
    difficulty = (0.5 - rate_i) * 0.4
    n_j = np.bincount(enc.learner, minlength=enc.n_learners).astype(float)
    rate_j = np.bincount(enc.learner, weights=enc.y, minlength=enc.n_learners) / n_j
    theta = heuristic_theta(rate_j)
    # delta-method SEs through the binomial proportion (smoothed so that 0/1 rates are finite)
    sm_i = (rate_i * n_i + 0.5) / (n_i + 1)
    sm_j = (rate_j * n_j + 0.5) / (n_j + 1)
    slope = (heuristic_theta(sm_j + 1e-4) - heuristic_theta(sm_j - 1e-4)) / 2e-4
    items = pd.DataFrame(
        {
            "item_id": enc.item_ids,
            "discrimination": np.ones(enc.n_items),
            "difficulty": difficulty,
            "discrimination_se": np.zeros(enc.n_items),
            "difficulty_se": 0.4 * np.sqrt(sm_i * (1 - sm_i) / n_i),
        }
    )
    abilities = pd.DataFrame(
        {
            "learner_id": enc.learner_ids,
            "theta": theta,
            "theta_se": np.abs(slope) * np.sqrt(sm_j * (1 - sm_j) / n_j),
        }
    )
    theta_q, logw = quadrature(cfg.quad_points, cfg.quad_range)
    p = Params(np.ones(enc.n_items), -difficulty)
    ll, _, _, _ = EStep(design_matrix(enc), theta_q, logw, 1 << 22).run(p)
    warns = warns + [
        "heuristic baseline: discrimination fixed at 1; standard errors are delta-method "
        "approximations through the proportions correct"
    ]
    return IrtFit(
        model="heuristic",
        items=items,
        abilities=abilities,
        loglik=ll,
        iterations=0,
        converged=True,
        n_learners=enc.n_learners,
        n_items=enc.n_items,
        n_responses=enc.n_responses,
        warnings=warns,
        info={"ability_method": "success-rate table", "quad_points": cfg.quad_points,
              "quad_range": cfg.quad_range},
    )  # fmt: skip
