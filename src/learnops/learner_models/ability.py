"""The learner's current ability from a chosen learner model (``irt.ability_model``), as of given
times: what the decision features ``ability``/``ability_se`` should hold when a decision is made.

The ability as of time *t* uses only the learner's answers strictly before *t*: it is the model's
pre-answer estimate of the learner's first answer at or after *t*, or, past the last answer, of a
probe appended after it (a probe at the end is read by nothing, so it changes no estimate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from learnops.errors import LearnopsError

if TYPE_CHECKING:
    from learnops.config import Params

ABILITY_MODELS = ("irt", "elo", "best_lr")


def fit_ability_model(name: str, responses: pd.DataFrame, params: Params) -> Any:
    """The learner model ``name`` (irt | elo | best_lr) fitted on ``responses``; Elo's step is
    tuned on ``learner_models.val_split`` of the learners."""
    from learnops.data.splits import learner_column, learner_split_mask
    from learnops.learner_models.best_lr import BestLr
    from learnops.learner_models.elo import tune
    from learnops.learner_models.irt_static import StaticIrt

    cfg = params.learner_models
    if name not in ABILITY_MODELS:
        known = ", ".join(ABILITY_MODELS)
        raise LearnopsError(f"ability model must be one of {known}, not {name!r}")
    if name == "elo":
        val = learner_split_mask(
            responses[learner_column(responses)], cfg.val_split, params.seed, "elo"
        )
        model, _ = tune(responses.loc[~val], responses.loc[val], cfg.elo_alpha, cfg.elo_beta)
        return model
    irt = StaticIrt(params.irt, params.seed).fit(responses)
    return irt if name == "irt" else BestLr(irt, C=cfg.C, fit_irt=False).fit(responses)


def ability_asof(model: Any, responses: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    """``ability`` and ``ability_se`` for every query row (learner column as in ``responses``,
    ``timestamp``), from the learner's answers strictly before the query's timestamp; a learner
    with no earlier answer gets the model's starting estimate. Rows in ``queries`` order."""
    from learnops.data.splits import learner_column

    lcol = learner_column(responses)
    if responses.empty:
        raise LearnopsError("no responses to estimate abilities from")
    if lcol not in queries.columns or "timestamp" not in queries.columns:
        raise LearnopsError(f"queries: need columns {lcol} and timestamp")
    r = responses[[lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in responses.columns else [])]].copy()  # fmt: skip
    # one resolution for both (merge_asof refuses e.g. ns against us)
    r["timestamp"] = pd.to_datetime(r["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    q = queries[[lcol, "timestamp"]].copy()
    q["timestamp"] = pd.to_datetime(q["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    q[lcol] = q[lcol].astype(str)
    r[lcol] = r[lcol].astype(str)
    end = max(r["timestamp"].max(), q["timestamp"].max()) + pd.Timedelta(seconds=1)
    learners = pd.unique(pd.concat([r[lcol], q[lcol]]))
    probe = r.iloc[[0] * len(learners)].copy()
    probe[lcol] = learners
    probe["timestamp"] = end
    probe["correct"] = 0
    table = pd.concat([r, probe], ignore_index=True)
    pred = model.predict(table)
    table["ability"] = pred.ability
    table["ability_se"] = pred.ability_se
    table = table.sort_values("timestamp", kind="stable")
    # the first answer at or after t: its pre-answer estimate (earlier answers only)
    first = table.groupby([lcol, "timestamp"], sort=False).head(1)
    q["_row"] = np.arange(len(q))
    out = pd.merge_asof(
        q.sort_values("timestamp", kind="stable"),
        first[[lcol, "timestamp", "ability", "ability_se"]],
        on="timestamp",
        by=lcol,
        direction="forward",
        allow_exact_matches=True,
    )
    return out.sort_values("_row")[["ability", "ability_se"]].reset_index(drop=True)


def prior_ability(model: Any) -> tuple[float, float]:
    """(ability, ability_se) ``model`` gives a learner with no answer yet: its estimate before a
    first answer (static IRT and Best-LR: the EAP of the prior; Elo: θ 0, SE 1)."""
    items = sorted(known_items(model))
    if not items:
        raise LearnopsError("the learner model knows no item")
    probe = pd.DataFrame(
        {"learner_hash": ["_"], "item_id": [items[0]], "correct": [0], "module": ["_"]}
    )
    pred = model.predict(probe)
    return float(pred.ability[0]), max(float(pred.ability_se[0]), 0.0)


def learner_ability(
    model: Any,
    history: pd.DataFrame,
    at: Any,
    known: set[str] | None = None,
    prior: tuple[float, float] | None = None,
) -> tuple[float, float, int, int]:
    """(ability, ability_se, answers used, answers left out) of one learner as of ``at`` from
    ``history`` (that learner's responses): what :func:`ability_asof` gives for the learner at
    ``at``, from the answers strictly before ``at`` to items ``model`` knows (answers to items
    it was not fitted on are left out and counted; ``known``: :func:`known_items` of ``model``,
    computed when not given). No answer: ``prior`` (default :func:`prior_ability`).

    The learner's answers and a probe after them go through ``model.predict`` once; the probe's
    pre-answer estimate is the ability (the same rows and probe :func:`ability_asof` reads,
    without its table-wide bookkeeping: one learner's replay takes milliseconds)."""
    at = pd.Timestamp(at)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    if not history.empty:
        ts = pd.to_datetime(history["timestamp"], utc=True)
        history = history.loc[(ts < at).to_numpy()]
    n_all = len(history)
    if n_all:
        known = known if known is not None else known_items(model)
        keep = np.fromiter((i in known for i in history["item_id"].astype(str)), bool, n_all)
        history = history.loc[keep]
    if history.empty:
        ability, se = prior if prior is not None else prior_ability(model)
        return ability, se, 0, n_all
    from learnops.data.splits import learner_column

    lcol = learner_column(history)
    cols = [lcol, "item_id", "correct", "timestamp", *(
        ["module"] if "module" in history.columns else [])]  # fmt: skip
    last = history.iloc[[-1]][cols].copy()
    last["timestamp"] = pd.to_datetime(last["timestamp"], utc=True) + pd.Timedelta(seconds=1)
    last["correct"] = 0
    table = pd.concat([history[cols], last], ignore_index=True)
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True)
    pred = model.predict(table)
    ability, se = float(pred.ability[-1]), max(float(pred.ability_se[-1]), 0.0)
    return ability, se, len(history), n_all - len(history)


def supply_abilities(
    decisions: pd.DataFrame, responses: pd.DataFrame, params: Params
) -> pd.DataFrame:
    """``decisions`` with ``ability``/``ability_se`` from the model ``irt.ability_model`` names,
    as of each decision's time (the learner's answers strictly before it; the model fitted on
    ``responses``). With ``irt`` (the default), and when there are no responses to estimate from
    (a warning is logged), the logged values are kept: ``decisions`` itself is returned."""
    name = params.irt.ability_model
    if name == "irt" or decisions.empty:
        return decisions
    if responses.empty:  # e.g. a window of served decisions only: nothing to estimate from
        import logging

        logging.getLogger("learnops.ability").warning(
            "irt.ability_model=%s: no responses in the window, the logged ability/ability_se "
            "are kept",
            name,
        )
        return decisions
    model = fit_ability_model(name, responses, params)
    est = ability_asof(model, responses, decisions)
    out = decisions.copy()
    out["ability"] = est["ability"].to_numpy(float)
    out["ability_se"] = np.maximum(est["ability_se"].to_numpy(float), 0.0)
    return out


def known_items(model: Any) -> set[str]:
    """The item ids ``model`` (StaticIrt, Elo or BestLr) has parameters for."""
    if getattr(model, "name", None) == "elo":
        return set(model.difficulty.index.astype(str))
    irt = model if getattr(model, "name", None) == "irt" else model.irt
    return set(irt._require().items["item_id"].astype(str))


def holdout_metrics(
    model: Any, responses: pd.DataFrame, params: Params, reference: Any | None = None
) -> dict[str, Any]:
    """Held-out metrics of a fitted ability ``model`` on the temporal split of
    ``learner_models`` (each learner's latest ``holdout_frac`` answers, each predicted from the
    learner's earlier answers): log-loss, AUC, accuracy, RMSE, ECE, and the paired difference of
    log-loss with static IRT (``reference``, default: fitted on the split's training rows) with
    its learner-bootstrap 95% interval (``log_loss_diff_low``/``_high``). Answers to items
    either model does not know are left out."""
    from learnops.data.splits import learner_column
    from learnops.learner_models.base import prepare
    from learnops.learner_models.compare import score, split_temporal
    from learnops.learner_models.irt_static import StaticIrt

    if responses.empty:
        raise LearnopsError("no responses to evaluate the ability model on")
    cfg = params.learner_models
    responses = responses.reset_index(drop=True)
    train, mask = split_temporal(responses, cfg.holdout_frac)
    ref = reference if reference is not None else StaticIrt(params.irt, params.seed).fit(train)
    known = known_items(model) & known_items(ref)
    keep = responses["item_id"].astype(str).isin(known).to_numpy()
    if not (mask & keep).any():
        raise LearnopsError("no held-out answers to items the ability model knows")
    table = responses.loc[keep].reset_index(drop=True)
    seq = prepare(table)
    learners = table[learner_column(table)].astype(str).to_numpy()
    rows = pd.DataFrame({"learner": learners, "correct": seq.unsort(seq.y)})
    rows["p_irt"] = ref.predict(table).p
    rows["p_candidate"] = model.predict(table).p
    rows = rows.loc[mask[keep]].reset_index(drop=True)
    metrics, paired = score(rows, ["irt", "candidate"], cfg.bootstrap, cfg.ece_bins, params.seed)
    out: dict[str, Any] = {"model": getattr(model, "name", "?"), "n": len(rows)}
    out["n_learners"] = int(rows["learner"].nunique())
    out.update({k: float(metrics.loc[("candidate", k), "value"]) for k in _METRICS})
    out["log_loss_irt"] = float(metrics.loc[("irt", "log_loss"), "value"])
    d = paired.loc[("candidate", "log_loss")]
    out["log_loss_diff_vs_irt"] = float(d["diff"])
    out["log_loss_diff_low"] = float(d["low"])
    out["log_loss_diff_high"] = float(d["high"])
    return out


_METRICS = ("log_loss", "auc", "accuracy", "rmse", "ece")
